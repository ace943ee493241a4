"""Lambda's event source mapping for a DynamoDB stream, reading moto's stream.

What Lambda does, and so what this does, per mapping (devstack/event_rules.py: StreamMapping):

- Every shard of the stream has one reader, with one batch in flight at a time, so the records
  of one item reach the function in the order they were written. A shard that ends (its
  iterator runs out) is finished; a child shard is read only after its parent is finished.
- A batch is up to BatchSize records, gathered for up to MaximumBatchingWindowInSeconds from the
  first record read (0: as soon as there are records).
- The function gets `{"Records": [...]}` in Lambda's shape (devstack/event_shapes.py).
- ReportBatchItemFailures: the checkpoint moves to the failed record with the lowest sequence
  number and the records from it on are retried; an empty or null list is success; an
  itemIdentifier that is empty or names no record of the batch fails the whole batch.
- A function error (an exception, a timeout, an unreadable response) with
  BisectBatchOnFunctionError splits the batch in two and retries each half in order; splitting
  does not count as a retry. A partial response retries only the records from the failed one on.
- After MaximumRetryAttempts retries of a (sub-)batch, or for records older than
  MaximumRecordAgeInSeconds, Lambda's record for streams (DDBStreamBatchInfo naming the discarded
  records) goes to the on-failure destination and reading goes on past them.

Where it differs: moto's stream has one shard that never ends and keeps every record (DynamoDB
Streams trims after 24 hours); checkpoints live in memory, so a restart of the stack starts again
from StartingPosition (which, with the tables in memory too, finds nothing old); retries wait
`retry_delay_seconds` (1 s by default) rather than Lambda's own backoff;
approximateInvokeCount counts the invocations of the discarded sub-batch itself.

Why our own poller and not moto's: moto's CreateEventSourceMapping hands records to its Lambda,
which needs Docker to run a function, and while a mapping exists its StreamShard drops the records
it handed over, so nothing could read them. moto's DescribeStream, GetShardIterator and GetRecords
are used as they are.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from typing import Any

from devstack.event_rules import BATCH_FAILED, StreamMapping, stream_checkpoint
from devstack.event_shapes import dynamodb_stream_record, stream_failure_record
from devstack.invocations import Function, Outcome
from devstack.lambda_context import function_arn
from devstack.pollers import Invoker

__all__ = ["StreamPoller"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # Lambda polls each shard about four times a second
DISCOVERY_SECONDS = 5.0  # how often the stream is described again for new shards
DEFAULT_RETRY_DELAY = 1.0


class StreamPoller:
    """One stream event source mapping: finds the shards and reads each in its own thread."""

    def __init__(self, invoker: Invoker, function: Function, mapping: StreamMapping, *, streams: Any,
                 sqs: Any, region: str, account_id: str, stopping: threading.Event,
                 poll_seconds: float = POLL_SECONDS, discovery_seconds: float = DISCOVERY_SECONDS) -> None:
        self.invoker = invoker
        self.function = function
        self.mapping = mapping
        self._streams = streams
        self._sqs = sqs
        self._region = region
        self._account_id = account_id
        self._stopping = stopping
        self._poll_seconds = poll_seconds
        self._discovery_seconds = discovery_seconds
        self._function_arn = function_arn(region, account_id, function.function_name)
        self._lock = threading.Lock()
        self._finished: set[str] = set()
        self._failure_queue_url: str | None = None

    # -- shards ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Start a reader for every shard (a child once its parent is finished) until stopped."""
        started: set[str] = set()
        first_pass = True
        while not self._stopping.is_set():
            try:
                shards = self._shards()
            except Exception:
                logger.warning("%s: describing %s failed", self.function.function_name, self.mapping.stream_arn,
                               exc_info=True)
                self._stopping.wait(1)
                continue
            known = {shard["ShardId"] for shard in shards}
            for shard in shards:
                shard_id, parent = shard["ShardId"], shard.get("ParentShardId")
                with self._lock:
                    waiting_for_parent = parent in known and parent not in self._finished
                if shard_id in started or waiting_for_parent:
                    continue
                started.add(shard_id)
                # LATEST applies to the shards open when the mapping starts; later ones are read whole.
                position = self.mapping.starting_position if first_pass else "TRIM_HORIZON"
                self.invoker.spawn(functools.partial(self._read_shard, shard_id, position),
                                   f"{self.function.function_name}:{shard_id}")
            first_pass = False
            self._stopping.wait(self._discovery_seconds)

    def _shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        params: dict[str, Any] = {"StreamArn": self.mapping.stream_arn}
        while True:
            description = self._streams.describe_stream(**params)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            params["ExclusiveStartShardId"] = last

    def _read_shard(self, shard_id: str, position: str) -> None:
        iterator: str | None = None
        checkpoint: str | None = None  # the last record handed over (done or discarded)
        while not self._stopping.is_set():
            try:
                if iterator is None:
                    where: dict[str, Any] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint}
                                             if checkpoint else {"ShardIteratorType": position})
                    iterator = self._streams.get_shard_iterator(
                        StreamArn=self.mapping.stream_arn, ShardId=shard_id, **where)["ShardIterator"]
                records, iterator = self._gather(iterator)
            except Exception:
                # Read again from the checkpoint: nothing is skipped or handed over twice.
                logger.warning("%s: reading %s failed", self.function.function_name, shard_id, exc_info=True)
                iterator = None
                self._stopping.wait(1)
                continue
            if records:
                self._process(shard_id, records)
                checkpoint = records[-1]["dynamodb"]["SequenceNumber"]
            if iterator is None:  # the shard has ended and everything in it is processed
                with self._lock:
                    self._finished.add(shard_id)
                return

    def _gather(self, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        """Read up to BatchSize records, for at most the batching window from the first one.

        Returns the records and the iterator after them (None once the shard has ended)."""
        records: list[dict[str, Any]] = []
        window = self.mapping.window_seconds
        window_ends: float | None = None
        next_iterator: str | None = iterator
        while next_iterator and len(records) < self.mapping.batch_size and not self._stopping.is_set():
            response = self._streams.get_records(
                ShardIterator=next_iterator, Limit=min(1000, self.mapping.batch_size - len(records)))
            next_iterator = response.get("NextShardIterator")
            received = response.get("Records", [])
            if received and window_ends is None:
                window_ends = time.monotonic() + window
            records.extend(received)
            if records and (window == 0 or time.monotonic() >= (window_ends or 0)):
                break
            if not received:
                wait = self._poll_seconds
                if window_ends is not None:
                    wait = min(wait, max(0.0, window_ends - time.monotonic()))
                self._stopping.wait(wait)
        return records, next_iterator

    # -- one batch, its retries, bisections and discards ----------------------------------------

    def _process(self, shard_id: str, received: list[dict[str, Any]]) -> None:
        """Deliver one batch until every record is done or discarded (or the stack stops)."""
        records = [dynamodb_stream_record(r, self.mapping.stream_arn, self._region) for r in received]
        batches = [records]  # what is left to deliver, in stream order
        retries = invokes = 0  # of batches[0]
        while batches and not self._stopping.is_set():
            batch = self._without_expired(shard_id, batches[0])
            if not batch:
                batches.pop(0)
                retries = invokes = 0
                continue
            outcome = self.invoker.invoke(self.function, {"Records": batch}, records=len(batch))
            invokes += 1
            failed_from = self._failed_from(outcome, batch)
            if failed_from is None:
                batches.pop(0)
                retries = invokes = 0
                continue
            self.invoker.count_failed_records(self.function, len(batch) - max(failed_from, 0))
            if failed_from != BATCH_FAILED:
                # A partial batch response: the records before the checkpoint are done.
                batch = batch[failed_from:]
                batches[0] = batch
                logger.warning("%s: %s failed at sequence number %s; %d record(s) will be retried",
                               self.function.function_name, shard_id, batch[0]["dynamodb"]["SequenceNumber"],
                               len(batch))
            elif self.mapping.bisect_on_error and len(batch) > 1:
                half = len(batch) // 2
                batches[0:1] = [batch[:half], batch[half:]]
                retries = invokes = 0  # splitting does not use up the retries
                logger.warning("%s: %s: the function failed on %d records; retrying them in halves",
                               self.function.function_name, shard_id, len(batch))
                self._wait_before_retry()
                continue
            retries += 1
            limit = self.mapping.maximum_retry_attempts
            if limit != -1 and retries > limit:
                self._discard(shard_id, batch, "RetryAttemptsExhausted", outcome, invokes)
                batches.pop(0)
                retries = invokes = 0
                continue
            self._wait_before_retry()

    def _failed_from(self, outcome: Outcome, batch: list[dict[str, Any]]) -> int | None:
        """None when the batch is done; else where it failed, or BATCH_FAILED."""
        if not outcome.ok:
            return BATCH_FAILED
        if not self.mapping.report_batch_item_failures:
            return None  # Lambda reads no response unless the mapping asks for it
        checkpoint = stream_checkpoint(outcome.result, [r["dynamodb"]["SequenceNumber"] for r in batch])
        if checkpoint == BATCH_FAILED:
            logger.error("%s: batchItemFailures names a missing, empty or unknown itemIdentifier; "
                         "the whole batch fails: %.300r", self.function.function_name, outcome.result)
        return checkpoint

    def _wait_before_retry(self) -> None:
        delay = self.invoker.retry_delay_seconds
        self._stopping.wait(DEFAULT_RETRY_DELAY if delay is None else delay)

    def _without_expired(self, shard_id: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch less its leading records older than MaximumRecordAgeInSeconds (discarded)."""
        limit = self.mapping.maximum_record_age_seconds
        if limit == -1:
            return batch
        now = time.time()
        expired = 0
        while expired < len(batch) and now - batch[expired]["dynamodb"].get("ApproximateCreationDateTime", now) > limit:
            expired += 1
        if expired:
            self._discard(shard_id, batch[:expired], "RecordAgeExceeded", None, 0)
        return batch[expired:]

    def _discard(self, shard_id: str, records: list[dict[str, Any]], condition: str, outcome: Outcome | None,
                 invokes: int) -> None:
        first, last = records[0]["dynamodb"]["SequenceNumber"], records[-1]["dynamodb"]["SequenceNumber"]
        logger.error("%s: %s: %s; records %s..%s (%d) are skipped%s", self.function.function_name, shard_id,
                     condition, first, last, len(records),
                     f" and described on {self.mapping.on_failure}" if self.mapping.on_failure else "")
        if not self.mapping.on_failure:
            return
        record = stream_failure_record(
            records, shard_id=shard_id, stream_arn=self.mapping.stream_arn, function_arn=self._function_arn,
            request_id=outcome.request_id if outcome is not None else "", condition=condition,
            invoke_count=invokes, function_error=outcome is not None and not outcome.ok)
        try:
            self._sqs.send_message(QueueUrl=self._failure_queue(), MessageBody=json.dumps(record))
        except Exception:
            logger.exception("%s: could not send the record of a discarded batch to %s",
                             self.function.function_name, self.mapping.on_failure)

    def _failure_queue(self) -> str:
        if self._failure_queue_url is None:
            assert self.mapping.on_failure is not None
            _, _, _, _, account, name = self.mapping.on_failure.split(":", 5)
            self._failure_queue_url = str(
                self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
        return self._failure_queue_url
