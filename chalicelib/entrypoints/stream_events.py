"""The tables' streams as domain events: one publisher per table, and the on-failure queue.

Each table's stream has its own event source mapping (infra/resources.json: `ProductChangesMapping`,
`OrderChangesMapping`), so a poison change of one table never holds up the other's events, and each
function may read only its own stream. Both hand their changes to the same `ChangePublisher`.

A batch is published in order and answered as Lambda reads a stream's partial batch response:
`batchItemFailures` names the first change not published, the mapping checkpoints before it and
retries from it (bisecting, up to MaximumRetryAttempts), then sends the batch's description to
`DomainEventsFailureQueue`, whose consumer `recover_lost_changes` reads the changes back from
the stream, publishes what it can and logs the rest whole.

```mermaid
flowchart LR
    ProductsTable -- stream --> publish_product_events --> EventBus
    OrdersTable -- stream --> publish_order_events --> EventBus
    publish_product_events & publish_order_events -. on failure .-> DomainEventsFailureQueue --> recover_lost_changes
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalice.app import Blueprint, SQSEvent

from chalicelib.bootstrap import services
from chalicelib.config import DEAD_LETTERS_MAX_CONCURRENCY, max_concurrency
from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.events import EventSource
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records
from chalicelib.logs import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["streams"]

streams = Blueprint(__name__)


@streams.lambda_function(name="publish_product_events")
def publish_product_events(event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
    return _publish(EventSource.PRODUCTS, event)


@streams.lambda_function(name="publish_order_events")
def publish_order_events(event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
    return _publish(EventSource.ORDERS, event)


def _publish(source: EventSource, event: Any) -> dict[str, list[dict[str, str]]]:
    from chalicelib.adapters.dynamodb_streams import change_of

    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        # Not a stream's event: nothing to checkpoint or retry. Logged, answered as done.
        logger.error("not a DynamoDB stream event", extra={"event": str(event)[:2000]})
        return {"batchItemFailures": []}
    sequences = [_sequence_of(record) for record in records]
    cut = next((i for i, sequence in enumerate(sequences) if sequence is None), len(records))
    changes = [change_of(record) if isinstance(record, Mapping) else None for record in records[:cut]]
    done = services().publisher.publish(source, changes)
    services().tracer.annotate(changes=len(records), published=done)
    if done < cut:
        logger.warning("changes not published; the stream retries from the first", extra={
            "source": str(source), "published": done, "records": len(records), "sequence_number": sequences[done]})
        return {"batchItemFailures": [{"itemIdentifier": str(sequences[done])}]}
    if cut < len(records):
        # A record without a sequence number cannot be named in a partial response: the batch
        # fails from here as a whole (Lambda bisects it and, in the end, hands it on as lost).
        raise PoisonMessage(f"stream record {cut} has no dynamodb.SequenceNumber")
    logger.info("changes published", extra={"source": str(source), "changes": len(records)})
    return {"batchItemFailures": []}


def _sequence_of(record: Any) -> str | None:
    try:
        sequence = record["dynamodb"]["SequenceNumber"]
    except (KeyError, TypeError):
        return None
    return sequence if isinstance(sequence, str) and sequence else None


# What the mappings gave up on: Lambda's on-failure record names the batch (its shard and first
# and last sequence numbers), not its changes, which are read back from the stream while it holds
# them (24 hours). A message that is not such a record is logged whole and acknowledged.
@streams.on_sqs_message(queue="DomainEventsFailureQueue", batch_size=1,
                        maximum_concurrency=max_concurrency(DEAD_LETTERS_MAX_CONCURRENCY, 2))
def recover_lost_changes(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _recover, span_name="## recover_lost_changes record")


def _recover(record: SQSRecord) -> None:
    from chalicelib.services.events import StreamBatch

    try:
        info = json_body_of(record)["DDBStreamBatchInfo"]
        batch = StreamBatch(stream_arn=str(info["streamArn"]), shard_id=str(info["shardId"]),
                            first_sequence=str(info["startSequenceNumber"]),
                            last_sequence=str(info["endSequenceNumber"]))
    except (ValueError, KeyError, TypeError):
        logger.error("unreadable message in the domain events' failure queue, dropped", extra={
            "message_id": record.message_id, "body": record.body[:10_000]})
        return
    recovered = services().lost_changes.recover(batch)
    logger.error("a stream batch failed every retry", extra={
        "stream_arn": batch.stream_arn, "first_sequence": batch.first_sequence,
        "last_sequence": batch.last_sequence, "republished": recovered.published, "lost": recovered.lost,
        "expired": recovered.expired})
