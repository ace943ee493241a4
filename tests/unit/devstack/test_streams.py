"""A stream poller's handling of one batch, over fakes: what the moto-backed tests cannot stage
(records older than MaximumRecordAgeInSeconds: moto stamps every record with the time of its write)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from devstack.event_rules import StreamMapping
from devstack.invocations import Function, Outcome
from devstack.lambda_context import FunctionSettings
from devstack.streams import StreamPoller

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
FAILURES = "arn:aws:sqs:us-east-1:123456789012:failures"


class FakeInvoker:
    def __init__(self, answer: Callable[[dict[str, Any]], Outcome]) -> None:
        self.events: list[dict[str, Any]] = []
        self._answer = answer

    retry_delay_seconds = 0.0

    def invoke(self, function: Function, event: dict[str, Any], *, records: int) -> Outcome:
        self.events.append(event)
        return self._answer(event)

    def count_failed_records(self, function: Function, count: int) -> None:
        pass

    def spawn(self, target: Callable[[], None], name: str) -> None:
        target()


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def get_queue_url(self, QueueName: str, QueueOwnerAWSAccountId: str) -> dict[str, str]:
        return {"QueueUrl": f"http://sqs/{QueueOwnerAWSAccountId}/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append({"url": QueueUrl, **json.loads(MessageBody)})


def _record(sequence: int, created: float) -> dict[str, Any]:
    """A record as boto3's GetRecords returns it (the creation time already a number here)."""
    return {"eventID": f"e{sequence}", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "dynamodb": {"ApproximateCreationDateTime": created, "Keys": {"pk": {"S": f"k{sequence}"}},
                         "SequenceNumber": str(sequence), "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}


def _poller(invoker: FakeInvoker, sqs: FakeSqs, *, streams: Any = None, stopping: threading.Event | None = None,
            **settings: Any) -> StreamPoller:
    mapping = StreamMapping(logical_id="M", uuid="u", function_name="sf-dev-publish", stream_arn=STREAM,
                            on_failure=FAILURES, **settings)
    function = Function(name="publish", function_name="sf-dev-publish", handler=lambda e, c: None,
                        settings=FunctionSettings(timeout_seconds=3, memory_mb=128))
    return StreamPoller(invoker, function, mapping, streams=streams, sqs=sqs, region="eu-west-1",
                        account_id="123456789012", stopping=stopping or threading.Event(), discovery_seconds=0.05)


def test_records_older_than_the_maximum_age_are_skipped_to_the_failure_queue_without_an_invocation() -> None:
    invoker, sqs = FakeInvoker(lambda event: Outcome("r")), FakeSqs()
    now = time.time()

    _poller(invoker, sqs, maximum_record_age_seconds=60)._process(
        "shard-1", [_record(1, now - 120), _record(2, now - 90), _record(3, now - 5)])

    assert [[r["dynamodb"]["SequenceNumber"] for r in e["Records"]] for e in invoker.events] == [["3"]]
    (skipped,) = sqs.sent
    assert skipped["url"] == "http://sqs/123456789012/failures"
    assert skipped["requestContext"]["condition"] == "RecordAgeExceeded"
    assert skipped["DDBStreamBatchInfo"] | {"approximateArrivalOfFirstRecord": "", "approximateArrivalOfLastRecord": ""} == {
        "shardId": "shard-1", "startSequenceNumber": "1", "endSequenceNumber": "2", "batchSize": 2,
        "streamArn": STREAM, "approximateArrivalOfFirstRecord": "", "approximateArrivalOfLastRecord": ""}


def test_without_a_maximum_age_old_records_are_delivered() -> None:
    invoker, sqs = FakeInvoker(lambda event: Outcome("r")), FakeSqs()

    _poller(invoker, sqs)._process("shard-1", [_record(1, time.time() - 86400)])

    assert len(invoker.events) == 1 and sqs.sent == []


def test_a_batch_that_keeps_failing_is_retried_the_maximum_number_of_times_and_then_described() -> None:
    invoker = FakeInvoker(lambda event: Outcome("req-9", error=RuntimeError("down")))
    sqs = FakeSqs()

    _poller(invoker, sqs, maximum_retry_attempts=3)._process("shard-1", [_record(7, time.time())])

    assert len(invoker.events) == 4
    (skipped,) = sqs.sent
    assert skipped["requestContext"] == {
        "requestId": "req-9", "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:sf-dev-publish",
        "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4}
    assert skipped["responseContext"]["functionError"] == "Unhandled"
    assert invoker.events[0]["Records"][0]["awsRegion"] == "eu-west-1"


class FakeStreams:
    """A stream whose parent shard has ended (records, then no next iterator) and whose child is open."""

    def __init__(self) -> None:
        now = time.time()
        self.shards = [{"ShardId": "child", "ParentShardId": "parent"}, {"ShardId": "parent"}]
        self._records = {"parent": [_record(1, now), _record(2, now)], "child": [_record(3, now)]}
        self._lock = threading.Lock()

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": self.shards}}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str) -> dict[str, str]:
        return {"ShardIterator": f"{ShardId}:0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, position = ShardIterator.split(":")
        time.sleep(0.05)  # a child read at once would overtake its parent
        with self._lock:
            records = self._records[shard][int(position):int(position) + Limit]
        response: dict[str, Any] = {"Records": records}
        if shard == "child" or not records:
            response["NextShardIterator"] = f"{shard}:{int(position) + len(records)}"
        return response  # the parent's last read has no next iterator: it has ended


def test_a_child_shard_is_read_only_after_its_parent_has_ended() -> None:
    stopping = threading.Event()
    invoker = FakeInvoker(lambda event: Outcome("r"))
    threads: list[threading.Thread] = []

    def spawn(target: Callable[[], None], name: str) -> None:
        threads.append(threading.Thread(target=target, daemon=True))
        threads[-1].start()

    invoker.spawn = spawn  # type: ignore[method-assign]
    poller = _poller(invoker, FakeSqs(), streams=FakeStreams(), stopping=stopping)
    runner = threading.Thread(target=poller.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 5
    while len(invoker.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stopping.set()
    runner.join(2)

    assert [[r["dynamodb"]["SequenceNumber"] for r in e["Records"]] for e in invoker.events] == [["1", "2"], ["3"]]
