"""The read side: consumers of the bus's events, each behind its own queue (rule -> SQS -> Lambda).

A queue between a rule and its function gives batching (ten events per invocation), retries
with a redrive to a dead-letter queue, and a bounded concurrency, none of which a rule's direct
Lambda target has (two asynchronous retries, then an event dropped or sent to a DLQ of its own).

- `project_sales`: the sales read model (services/sales.py), one write per event, idempotent;
- `email_low_stock`: the seller's low-stock e-mail, once per StockLow event;
- their dead-letter consumers log what was lost whole, so an operator can act on it
  (`make rebuild-sales` restores the read model from the tables);
- `rebuild_sales`: the rebuild, invoked by hand (`make rebuild-sales`, or `aws lambda invoke`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalice.app import Blueprint, SQSEvent

from chalicelib.bootstrap import services
from chalicelib.config import DEAD_LETTERS_MAX_CONCURRENCY, READ_MODELS_MAX_CONCURRENCY, max_concurrency
from chalicelib.domain.errors import PoisonMessage
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records
from chalicelib.logs import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["read_side"]

read_side = Blueprint(__name__)


def _event_of(record: SQSRecord) -> tuple[str, Mapping[str, Any]]:
    """An EventBridge event's detail-type and detail (the body an SQS target receives). Raises
    PoisonMessage for anything else: retried, then kept in the DLQ and logged there."""
    try:
        body = json_body_of(record)
        detail_type, detail = body["detail-type"], body["detail"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonMessage(f"not an EventBridge event: {exc}") from exc
    if not isinstance(detail_type, str) or not isinstance(detail, Mapping):
        raise PoisonMessage("an event without a detail-type and a detail object")
    return detail_type, detail


# No batching window: a lone event is applied at once; under load the backlog fills the batches
# anyway, since at most READ_MODELS_MAX_CONCURRENCY invocations run.
@read_side.on_sqs_message(queue="SalesEventsQueue", batch_size=10, maximum_batching_window_in_seconds=0,
                          maximum_concurrency=max_concurrency(READ_MODELS_MAX_CONCURRENCY, 2))
def project_sales(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _project, span_name="## project_sales record")


def _project(record: SQSRecord) -> None:
    detail_type, detail = _event_of(record)
    services().tracer.annotate(event_id=str(detail.get("event_id")), product_id=str(detail.get("product_id")),
                               order_id=detail.get("order_id"))
    outcome = services().sales.on_event(detail_type, detail)
    logger.info("sales event applied", extra={"detail_type": detail_type, "event_id": detail.get("event_id"),
                                              "outcome": None if outcome is None else str(outcome)})


@read_side.on_sqs_message(queue="LowStockQueue", batch_size=10, maximum_batching_window_in_seconds=0,
                          maximum_concurrency=max_concurrency(READ_MODELS_MAX_CONCURRENCY, 2))
def email_low_stock(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _email, span_name="## email_low_stock record")


def _email(record: SQSRecord) -> None:
    _, detail = _event_of(record)
    services().tracer.annotate(event_id=str(detail.get("event_id")), product_id=str(detail.get("product_id")),
                               owner=str(detail.get("owner")))
    outcome = services().low_stock.notify(detail)
    logger.info("low stock notified", extra={"event_id": detail.get("event_id"),
                                             "product_id": detail.get("product_id"), "outcome": str(outcome)})


@read_side.on_sqs_message(queue="SalesEventsQueueDeadLetterQueue", batch_size=10,
                          maximum_concurrency=max_concurrency(DEAD_LETTERS_MAX_CONCURRENCY, 2))
def sales_dead_letter(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, lambda record: _lost(record, "the sales read model misses it; "
                                                               "make rebuild-sales restores it"),
                           span_name="## sales_dead_letter record")


@read_side.on_sqs_message(queue="LowStockQueueDeadLetterQueue", batch_size=10,
                          maximum_concurrency=max_concurrency(DEAD_LETTERS_MAX_CONCURRENCY, 2))
def low_stock_dead_letter(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, lambda record: _lost(record, "its seller was not e-mailed"),
                           span_name="## low_stock_dead_letter record")


def _lost(record: SQSRecord, consequence: str) -> None:
    # EventBridge's own delivery failures land here too, with the reason in message attributes.
    attributes = {k: v.string_value for k, v in record.message_attributes.items()}
    logger.error(f"event failed every delivery: {consequence}", extra={
        "message_id": record.message_id, "receive_count": record.attributes.approximate_receive_count,
        "attributes": attributes, "body": record.body[:10_000]})


@read_side.lambda_function(name="rebuild_sales")
def rebuild_sales(event: Any, context: Any) -> dict[str, Any]:
    rebuilt = services().sales.rebuild()
    logger.info("sales read model rebuilt", extra=rebuilt.__dict__)
    return dict(rebuilt.__dict__)
