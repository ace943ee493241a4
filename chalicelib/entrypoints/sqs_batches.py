"""SQS batches, record by record: a span per record, partial batch failures, poison kept apart.

Every queue consumer hands its record handler to `process_records`. A record whose handler raises
is returned in `batchItemFailures` (only that record is retried, later landing in the queue's DLQ
after maxReceiveCount); the rest of the batch is acknowledged. Handlers therefore raise only for
what a retry can fix, or for messages that must end in the DLQ, and record permanent failures
themselves. Each record gets its own span continuing the sender's trace (AWSTraceHeader), so
one user action can be followed across the queue.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from chalicelib.adapters.logs import logger
from chalicelib.bootstrap import container

__all__ = ["process_records", "json_body_of"]

RecordHandler = Callable[[Any], None]  # takes a Powertools SQSRecord


def json_body_of(record: Any) -> Any:
    """The record's body parsed as JSON; raises ValueError (a poison message) otherwise."""
    return json.loads(record.body)


def _trace_attribute(record: Any) -> str | None:
    # Messages fanned out through SNS reach the queue without the AWSTraceHeader system attribute
    # (moto never sets it; AWS only with SNS active tracing): senders also put the header in a
    # message attribute of that name, which raw delivery carries to SQS.
    attribute = record.message_attributes["AWSTraceHeader"]
    return attribute.string_value if attribute is not None else None


def process_records(event: Any, handler: RecordHandler, *, span_name: str) -> dict[str, Any]:
    """Run `handler` on each record of a Chalice SQSEvent; returns Lambda's partial batch response."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    tracer = container().tracer
    function = getattr(event.context, "function_name", None) or span_name

    def traced(record: Any) -> None:
        header = record.attributes.aws_trace_header or _trace_attribute(record)
        with tracer.invocation(span_name, function=function, trace_header=header) as span:
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
