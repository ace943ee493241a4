"""SQS batches, record by record: a span per record, partial batch failures, poison kept apart.

Every queue consumer hands its record handler to `process_records`. A record whose handler raises
is returned in `batchItemFailures` (only that record is retried, later landing in the queue's DLQ
after maxReceiveCount); the rest of the batch is acknowledged. Handlers therefore raise only for
what a retry can fix, or for messages that must end in the DLQ, and record permanent failures
themselves.

Tracing follows what Lambda does with an SQS trigger: an invocation is one new trace, linked to
the traces of the messages' senders (`sender_trace_headers`, opened by entrypoints/middleware.py
around the whole handler, so work done before or after the records is in it too); each record is
a subsegment carrying the record's annotations. In Lambda the service opens that segment and adds
the links; in the local stack the tracer does both, so the traces look the same in either place.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from chalicelib.logs import logger
from chalicelib.bootstrap import services

__all__ = ["process_records", "json_body_of", "sender_trace_headers"]

RecordHandler = Callable[[Any], None]  # takes a Powertools SQSRecord


def json_body_of(record: Any) -> Any:
    """The record's body parsed as JSON; raises ValueError (a poison message) otherwise."""
    return json.loads(record.body)


def sender_trace_headers(event: Any) -> list[str]:
    """The trace headers of the senders of a Chalice SQSEvent's records (those that have one)."""
    return [header for header in map(_trace_header, event.to_dict().get("Records", [])) if header]


def _trace_header(record: dict[str, Any]) -> str | None:
    """The sender's trace header of one record of Lambda's SQS event."""
    header = (record.get("attributes") or {}).get("AWSTraceHeader")
    if header:
        return header
    # SNS passes the publisher's trace on to SQS subscribers, but moto does not: senders through
    # SNS also put the header in a message attribute of that name, which raw delivery carries.
    attribute = (record.get("messageAttributes") or {}).get("AWSTraceHeader") or {}
    return attribute.get("stringValue")


def process_records(event: Any, handler: RecordHandler, *, span_name: str) -> dict[str, Any]:
    """Run `handler` on each record of a Chalice SQSEvent; returns Lambda's partial batch response."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    tracer = services().tracer

    def traced(record: Any) -> None:
        with tracer.subsegment(span_name) as span:
            span.annotate(message_id=record.message_id)
            try:
                handler(record)
            except Exception:
                logger.exception("record failed; it will be retried", extra={
                    "message_id": record.message_id,
                    "receive_count": record.attributes.approximate_receive_count})
                raise

    # A processor per invocation: the local stack runs invocations concurrently in threads.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event.to_dict(), record_handler=traced, processor=processor,
                                    context=event.context)
