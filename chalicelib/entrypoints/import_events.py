"""The import pipeline's queue consumers: the dispatcher (fan-out) and the chunk workers (fan-in).

    ImportsBucket --ObjectCreated--> ImportUploadsQueue --> dispatch_import
        --> ImportChunksTopic --> ImportChunksQueue --> import_chunk (N in parallel)
        --> ImportCompletedTopic
    ImportUploadsQueueDeadLetterQueue --> dispatch_import_dead_letter
    ImportChunksQueueDeadLetterQueue --> import_chunk_dead_letter
        (the job fails with a reason, rather than stay pending or running for ever)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Blueprint, SQSEvent

from chalicelib.bootstrap import services
from chalicelib.config import (
    DEAD_LETTERS_MAX_CONCURRENCY, IMPORT_DISPATCH_MAX_CONCURRENCY, import_max_concurrency, max_concurrency,
)
from chalicelib.entrypoints.s3_notifications import created_objects
from chalicelib.logs import logger
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["events"]

events = Blueprint(__name__)


# One upload per invocation: planning streams the whole file (up to 50 MiB) once.
# Capped (per stage) like every queue consumer: a burst of uploads cannot take the account's
# concurrency from the API.
@events.on_sqs_message(queue="ImportUploadsQueue", batch_size=1,
                       maximum_concurrency=max_concurrency(IMPORT_DISPATCH_MAX_CONCURRENCY, 2))
def dispatch_import(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _dispatch, span_name="## dispatch_import record")


def _dispatch(record: SQSRecord) -> None:
    from chalicelib.domain.imports import parse_upload_key

    for key in (created.key for created in created_objects(json_body_of(record))):
        parsed = parse_upload_key(key)
        tracer = services().tracer
        tracer.annotate(job_id=parsed[1] if parsed else None, owner=parsed[0] if parsed else None)
        outcome = services().imports.dispatch(key)
        logger.info("import dispatched", extra={"key": key, "outcome": outcome})


# A chunk (500 rows) per invocation, several invocations at once: the fan-out's parallelism is
# the concurrency cap, which also bounds the write rate an import puts on the products table.
@events.on_sqs_message(queue="ImportChunksQueue", batch_size=1,
                       maximum_concurrency=import_max_concurrency())
def import_chunk(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _import_chunk, span_name="## import_chunk record")


def _import_chunk(record: SQSRecord) -> None:
    from chalicelib.domain.imports import Chunk

    chunk = Chunk.from_message(json_body_of(record))  # PoisonMessage -> retried -> DLQ
    tracer = services().tracer
    tracer.annotate(job_id=chunk.job_id, owner=chunk.owner, chunk=chunk.index)
    result = services().imports.import_chunk(chunk)
    tracer.annotate(outcome=result.outcome, write_calls=result.write_calls)
    logger.info("import chunk", extra={
        "job_id": chunk.job_id, "chunk": chunk.index, "outcome": result.outcome,
        "rows_imported": result.imported, "rows_failed": result.failed,
        "products_written": result.written, "dynamodb_write_calls": result.write_calls})


# An upload or a chunk lands in its DLQ after maxReceiveCount failed deliveries; without these its
# job would show `pending` or `running` for ever. A message there that is neither (poison already
# retried five times) is logged whole, for a person, and acknowledged: failing it again would only
# retry it every visibility timeout for the DLQ's fourteen days. Transient errors still raise.
@events.on_sqs_message(queue="ImportUploadsQueueDeadLetterQueue", batch_size=10,
                       maximum_concurrency=max_concurrency(DEAD_LETTERS_MAX_CONCURRENCY, 2))
def dispatch_import_dead_letter(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _abandon_upload, span_name="## dispatch_import_dead_letter record")


def _abandon_upload(record: SQSRecord) -> None:
    try:
        keys = [created.key for created in created_objects(json_body_of(record))]
    except ValueError:  # not JSON, or PoisonMessage
        _log_unreadable(record)
        return
    for key in keys:
        outcome = services().imports.abandon_upload(key)
        logger.error("import upload abandoned after every retry", extra={"key": key, "outcome": outcome})


@events.on_sqs_message(queue="ImportChunksQueueDeadLetterQueue", batch_size=10,
                       maximum_concurrency=max_concurrency(DEAD_LETTERS_MAX_CONCURRENCY, 2))
def import_chunk_dead_letter(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _abandon_chunk, span_name="## import_chunk_dead_letter record")


def _abandon_chunk(record: SQSRecord) -> None:
    from chalicelib.domain.imports import Chunk

    try:
        chunk = Chunk.from_message(json_body_of(record))
    except ValueError:  # PoisonMessage is one
        _log_unreadable(record)
        return
    services().tracer.annotate(job_id=chunk.job_id, owner=chunk.owner, chunk=chunk.index)
    outcome = services().imports.abandon_chunk(chunk)
    logger.error("import chunk abandoned after every retry", extra={
        "job_id": chunk.job_id, "chunk": chunk.index, "first_row": chunk.first_row, "rows": chunk.rows,
        "outcome": outcome})


def _log_unreadable(record: SQSRecord) -> None:
    logger.error("unreadable message in a dead-letter queue, dropped", extra={
        "message_id": record.message_id, "queue": record.event_source_arn, "body": record.body[:10_000]})
