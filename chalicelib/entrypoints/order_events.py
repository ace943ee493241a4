"""The orders queue's consumer: levels bursts of orders into a bounded stream of stock updates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from chalice.app import Blueprint, SQSEvent

from chalicelib.logs import logger
from chalicelib.bootstrap import services
from chalicelib.config import orders_max_concurrency
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records

if TYPE_CHECKING:
    from chalicelib.domain.orders import OrderPlaced
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["events"]

events = Blueprint(__name__)


# Batches of up to 10 gathered for at most 1 s: cheap at a trickle, efficient under a burst. The
# concurrency cap is the levelling itself: at most N invocations write to DynamoDB at once, whatever
# the burst. Chalice emits no ReportBatchItemFailures (chalice #2029): the deploy template adds it.
@events.on_sqs_message(queue="OrdersQueue", batch_size=10, maximum_batching_window_in_seconds=1,
                       maximum_concurrency=orders_max_concurrency())
def consume_orders(event: SQSEvent) -> PartialItemFailureResponse:
    # One read of the stock for the whole batch instead of one per order (under a burst, a batch
    # is ten orders for the same few products); poison is left for its record to report.
    stocks = services().order_consumer.read_stocks(_placed_orders(event))
    return process_records(event, lambda record: _apply(record, stocks), span_name="## consume_orders record")


def _placed_orders(event: SQSEvent) -> Iterator[OrderPlaced]:
    from chalicelib.domain.orders import OrderPlaced

    for record in event:
        try:
            yield OrderPlaced.from_message(json_body_of(record))
        except ValueError:  # poison (PoisonMessage is one): its record's own handler reports it
            continue


def _apply(record: SQSRecord, stocks: dict[str, int | None]) -> None:
    from chalicelib.domain.orders import OrderPlaced

    placed = OrderPlaced.from_message(json_body_of(record))  # PoisonMessage -> retried -> DLQ
    tracer = services().tracer
    tracer.annotate(order_id=placed.order_id, product_id=placed.product_id, owner=placed.buyer)
    outcome = services().order_consumer.apply(placed, stocks)
    tracer.annotate(outcome=outcome)
    logger.info("order applied", extra={"order_id": placed.order_id, "product_id": placed.product_id,
                                        "quantity": placed.quantity, "outcome": outcome})
