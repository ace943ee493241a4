"""SQS batches, record by record: a span per record, partial batch failures, poison kept apart.

Every queue consumer hands its record handler to `process_records`. A record whose handler raises
is returned in `batchItemFailures` (only that record is retried, later landing in the queue's DLQ
after maxReceiveCount); the rest of the batch is acknowledged. Handlers therefore raise only for
what a retry can fix, or for messages that must end in the DLQ, and record permanent failures
themselves.

Tracing follows Lambda: an SQS-triggered invocation is a new trace that Lambda links to the
traces of the messages' senders; entrypoints/middleware.py opens the invocation's subsegment
around the whole handler, and each record is a subsegment of it carrying the record's
annotations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from chalice.app import SQSEvent

from chalicelib.bootstrap import services
from chalicelib.logs import logger

if TYPE_CHECKING:  # Powertools' batch utility loads with the first batch, not with the API
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["process_records", "json_body_of", "RecordHandler"]

RecordHandler = Callable[["SQSRecord"], None]


class Message(Protocol):
    """A queue record as Powertools or Chalice hands it over: what it carries is its body."""

    @property
    def body(self) -> str: ...


def json_body_of(record: Message) -> Any:
    """The record's body parsed as JSON; raises ValueError (a poison message) otherwise."""
    return json.loads(record.body)


def process_records(event: SQSEvent, handler: RecordHandler, *, span_name: str) -> PartialItemFailureResponse:
    """Run `handler` on each record of a Chalice SQSEvent; returns Lambda's partial batch response."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    tracer = services().tracer

    def traced(record: SQSRecord) -> None:
        with tracer.subsegment(span_name) as span:
            span.annotate(message_id=record.message_id)
            try:
                handler(record)
            except Exception:
                logger.exception("record failed; it will be retried", extra={
                    "message_id": record.message_id,
                    "receive_count": record.attributes.approximate_receive_count})
                raise

    # A processor per invocation: it holds the batch's results while it runs.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    # Chalice types an event's context as a dict; it is the Lambda context object.
    return process_partial_response(event=event.to_dict(), record_handler=traced, processor=processor,
                                    context=cast("LambdaContext", event.context))
