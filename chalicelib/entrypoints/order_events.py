"""The orders queue's consumer: levels bursts of orders into a bounded stream of stock
reservations, each starting the order's saga; and the consumer of its dead-letter queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from chalice.app import Blueprint, SQSEvent

from chalicelib.logs import logger
from chalicelib.bootstrap import services
from chalicelib.config import DEAD_LETTERS_MAX_CONCURRENCY, max_concurrency, orders_max_concurrency
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records

if TYPE_CHECKING:
    from chalicelib.domain.orders import Offer, OrderPlaced
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
    offers = services().order_consumer.read_offers(_placed_orders(event))
    return process_records(event, lambda record: _apply(record, offers), span_name="## consume_orders record")


def _placed_orders(event: SQSEvent) -> Iterator[OrderPlaced]:
    from chalicelib.domain.orders import OrderPlaced

    for record in event:
        try:
            yield OrderPlaced.from_message(json_body_of(record))
        except ValueError:  # poison (PoisonMessage is one): its record's own handler reports it
            continue


def _apply(record: SQSRecord, offers: dict[str, Offer | None]) -> None:
    from chalicelib.domain.orders import OrderPlaced

    placed = OrderPlaced.from_message(json_body_of(record))  # PoisonMessage -> retried -> DLQ
    tracer = services().tracer
    tracer.annotate(order_id=placed.order_id, product_id=placed.product_id, owner=placed.buyer)
    outcome = services().order_consumer.apply(placed, offers)
    tracer.annotate(outcome=outcome)
    logger.info("order applied", extra={"order_id": placed.order_id, "product_id": placed.product_id,
                                        "quantity": placed.quantity, "outcome": outcome})


# An order whose message failed every delivery would otherwise stay `queued` for ever: it ends
# `failed` (`not_processed`), or, if it got further, is finished as the consumer would have. A
# message that is not an order (poison, already retried) is logged whole and acknowledged.
@events.on_sqs_message(queue="OrdersQueueDeadLetterQueue", batch_size=10,
                       maximum_concurrency=max_concurrency(DEAD_LETTERS_MAX_CONCURRENCY, 2))
def orders_dead_letter(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _give_up, span_name="## orders_dead_letter record")


def _give_up(record: SQSRecord) -> None:
    from chalicelib.domain.orders import OrderPlaced

    try:
        placed = OrderPlaced.from_message(json_body_of(record))
    except ValueError:  # not JSON, or PoisonMessage
        logger.error("unreadable message in the orders dead-letter queue, dropped", extra={
            "message_id": record.message_id, "body": record.body[:10_000]})
        return
    services().tracer.annotate(order_id=placed.order_id, product_id=placed.product_id, owner=placed.buyer)
    outcome = services().order_consumer.give_up(placed)
    logger.error("order message failed every delivery", extra={
        "order_id": placed.order_id, "receive_count": record.attributes.approximate_receive_count,
        "outcome": outcome})
