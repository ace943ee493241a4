"""The emulator reads a real (moto) DynamoDB stream into a pure lambda function as Lambda's stream
event source mapping does: per-shard order, batches, partial batch responses, bisection, bounded
retries and the on-failure destination."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from chalice import Chalice

from devstack.emulator import EventSourceEmulator, FunctionSettings, UnsupportedEventSource
from devstack.event_rules import StreamMapping

REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "storefront-dev-"
FUNCTION = PREFIX + "publish"

pytestmark = pytest.mark.timeout(90)


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def aws(moto_server: str) -> Callable[[str], Any]:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return lambda service: session.client(service, endpoint_url=moto_server)


@pytest.fixture
def table(aws: Callable[[str], Any]) -> tuple[str, str]:
    """A fresh table with a NEW_AND_OLD_IMAGES stream: (name, stream ARN)."""
    name = f"items-{uuid.uuid4().hex[:8]}"
    description = aws("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return name, description["LatestStreamArn"]


@pytest.fixture
def failure_queue(aws: Callable[[str], Any]) -> tuple[str, str]:
    """The on-failure destination: (URL, ARN)."""
    url = aws("sqs").create_queue(QueueName=f"stream-failures-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


@pytest.fixture
def mapping(table: tuple[str, str], failure_queue: tuple[str, str]) -> StreamMapping:
    """The template's settings (bisect, partial responses, an on-failure queue) with 2 retries."""
    return StreamMapping(
        logical_id="ItemChangesMapping", uuid="m-1", function_name=FUNCTION, stream_arn=table[1],
        batch_size=100, window_seconds=0, bisect_on_error=True, maximum_retry_attempts=2,
        maximum_record_age_seconds=21600, report_batch_item_failures=True, on_failure=failure_queue[1])


@pytest.fixture
def emulate(aws: Callable[[str], Any], moto_server: str) -> Iterator[Callable[..., EventSourceEmulator]]:
    emulators: list[EventSourceEmulator] = []

    def emulate(app: Chalice, *mappings: StreamMapping, **options: Any) -> EventSourceEmulator:
        options.setdefault("retry_delay_seconds", 0.05)
        emulator = EventSourceEmulator(
            app, session=boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                       region_name=REGION),
            endpoint_url=moto_server, region=REGION, account_id=ACCOUNT,
            resolve_queue_url=lambda name: aws("sqs").get_queue_url(QueueName=name)["QueueUrl"],
            resolve_topic_arn=lambda name: name,
            settings_for=lambda name: FunctionSettings(timeout_seconds=10, memory_mb=128),
            function_name_prefix=PREFIX, stream_mappings=mappings, **options)
        emulators.append(emulator)
        emulator.start()
        return emulator

    yield emulate
    for emulator in emulators:
        emulator.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class Batches:
    """Every batch the function was invoked with, as the `n` attribute of each record's new image."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    @property
    def numbers(self) -> list[list[int]]:
        with self._lock:
            return [[number(r) for r in event["Records"]] for event in self.events]

    def delivered(self) -> set[int]:
        return {n for batch in self.numbers for n in batch}


def number(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["NewImage"]["n"]["N"])


def sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def write(aws: Callable[[str], Any], table: str, *numbers: int, key: str | None = None) -> None:
    """One put per number: item `key` (or one item per number) with attribute n."""
    for n in numbers:
        aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": key or f"item-{n}"}, "n": {"N": str(n)}})


def failure_records(aws: Callable[[str], Any], url: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The on-failure destination's records, once `count` have arrived or `timeout` is over."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        for message in aws("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=1).get("Messages", []):
            found.append(json.loads(message["Body"]))
    return found


def stream_app(handle: Callable[[dict[str, Any]], Any]) -> Chalice:
    app = Chalice("streams")

    @app.lambda_function(name="publish")
    def publish(event: dict[str, Any], context: Any) -> Any:
        return handle(event)

    return app


# -- the event ----------------------------------------------------------------------------------


def test_a_change_arrives_as_lambdas_dynamodb_stream_record(aws, table, mapping, emulate):
    name, stream_arn = table
    batches = Batches()
    emulate(stream_app(batches.record), mapping)

    aws("dynamodb").put_item(TableName=name, Item={"pk": {"S": "p1"}, "n": {"N": "1"}, "raw": {"B": b"\x00\x01"}})
    aws("dynamodb").put_item(TableName=name, Item={"pk": {"S": "p1"}, "n": {"N": "2"}})
    wait_until(lambda: batches.delivered() == {1, 2}, what="both changes")

    inserted, modified = [r for event in batches.events for r in event["Records"]]
    assert inserted["eventName"] == "INSERT" and modified["eventName"] == "MODIFY"
    assert (inserted["eventSource"], inserted["eventSourceARN"], inserted["awsRegion"]) == (
        "aws:dynamodb", stream_arn, REGION)
    assert inserted["eventID"] and inserted["eventVersion"]
    change = modified["dynamodb"]
    assert change["Keys"] == {"pk": {"S": "p1"}}
    assert change["OldImage"] == {"pk": {"S": "p1"}, "n": {"N": "1"}, "raw": {"B": base64.b64encode(b"\x00\x01").decode()}}
    assert change["NewImage"] == {"pk": {"S": "p1"}, "n": {"N": "2"}}
    assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert int(change["SequenceNumber"]) > int(inserted["dynamodb"]["SequenceNumber"])
    assert isinstance(change["ApproximateCreationDateTime"], float)
    assert abs(change["ApproximateCreationDateTime"] - time.time()) < 60
    assert change["SizeBytes"] > 0
    json.dumps(batches.events)  # what Lambda hands a function is JSON


# -- order and batching -------------------------------------------------------------------------


def test_one_items_changes_arrive_in_order_one_batch_at_a_time_across_batches(aws, table, mapping, emulate):
    name, _ = table
    batches = Batches()
    in_flight, most_in_flight = [0], [0]
    lock = threading.Lock()

    def handle(event: dict[str, Any]) -> None:
        with lock:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        time.sleep(0.05)  # long enough for a second batch to start, were one allowed
        batches.record(event)
        with lock:
            in_flight[0] -= 1

    emulator = emulate(stream_app(handle), replace(mapping, batch_size=3))
    write(aws, name, *range(1, 11), key="p1")
    wait_until(lambda: 10 in batches.delivered(), what="the tenth change")

    assert [n for batch in batches.numbers for n in batch] == list(range(1, 11))
    assert max(len(batch) for batch in batches.numbers) == 3 and len(batches.numbers) >= 4
    assert most_in_flight[0] == 1
    assert emulator.stats["publish"].records_delivered == 10


def test_the_batching_window_gathers_changes_made_within_it_into_one_batch(aws, table, mapping, emulate):
    name, _ = table
    batches = Batches()
    emulate(stream_app(batches.record), replace(mapping, window_seconds=1.5))

    for n in range(1, 6):
        write(aws, name, n)
        time.sleep(0.1)
    wait_until(lambda: batches.delivered() == {1, 2, 3, 4, 5}, what="five changes")

    assert batches.numbers == [[1, 2, 3, 4, 5]]


# -- failures -----------------------------------------------------------------------------------


def test_a_partial_batch_response_retries_from_the_lowest_failed_record_only(aws, table, mapping, emulate):
    name, _ = table
    batches = Batches()
    answered = threading.Event()

    def handle(event: dict[str, Any]) -> dict[str, Any]:
        batches.record(event)
        if answered.is_set():
            return {"batchItemFailures": []}
        answered.set()
        by_number = {number(r): sequence(r) for r in event["Records"]}
        # Two failures named out of order: the checkpoint is the lower one.
        return {"batchItemFailures": [{"itemIdentifier": by_number[5]}, {"itemIdentifier": by_number[3]}]}

    write(aws, name, *range(1, 6))  # before the poller starts: one batch of five
    emulator = emulate(stream_app(handle), mapping)
    wait_until(lambda: len(batches.numbers) >= 2, what="the retry")
    time.sleep(0.3)  # a wrong poller would deliver more by now

    assert batches.numbers == [[1, 2, 3, 4, 5], [3, 4, 5]]
    assert emulator.stats["publish"].records_failed == 3


def test_without_report_batch_item_failures_a_partial_response_is_ignored(aws, table, mapping, emulate):
    name, _ = table
    batches = Batches()

    def handle(event: dict[str, Any]) -> dict[str, Any]:
        batches.record(event)
        return {"batchItemFailures": [{"itemIdentifier": sequence(event["Records"][0])}]}

    write(aws, name, 1, 2)
    emulate(stream_app(handle), replace(mapping, report_batch_item_failures=False))
    wait_until(lambda: batches.numbers, what="the batch")
    time.sleep(0.3)

    assert batches.numbers == [[1, 2]]


def test_an_unknown_item_identifier_fails_the_whole_batch(aws, table, mapping, failure_queue, emulate):
    name, _ = table
    batches = Batches()

    def handle(event: dict[str, Any]) -> dict[str, Any]:
        batches.record(event)
        return {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}]}

    write(aws, name, 1, 2, 3)
    emulate(stream_app(handle), replace(mapping, bisect_on_error=False, maximum_retry_attempts=1))
    (failure,) = failure_records(aws, failure_queue[0], 1)

    assert batches.numbers == [[1, 2, 3], [1, 2, 3]]
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 3
    # The function answered: no function error, as Lambda reports a failed partial response.
    assert "functionError" not in failure["responseContext"]


def test_a_function_error_splits_the_batch_in_two_and_retries_each_half(aws, table, mapping, emulate):
    name, _ = table
    batches = Batches()

    def handle(event: dict[str, Any]) -> None:
        batches.record(event)
        if len(batches.numbers) == 1:
            raise RuntimeError("the bus is down")

    write(aws, name, *range(1, 7))
    emulator = emulate(stream_app(handle), mapping)
    wait_until(lambda: len(batches.numbers) >= 3, what="both halves")
    time.sleep(0.3)

    assert batches.numbers == [[1, 2, 3, 4, 5, 6], [1, 2, 3], [4, 5, 6]]
    assert emulator.stats["publish"].errors == 1


def test_a_crash_mid_batch_redelivers_the_batch_so_its_earlier_side_effects_repeat(aws, table, mapping, failure_queue,
                                                                                   emulate):
    name, _ = table
    published: list[int] = []
    crashed = threading.Event()

    def handle(event: dict[str, Any]) -> None:
        for i, record in enumerate(event["Records"]):
            published.append(number(record))  # a side effect that is not undone
            if i == 2 and not crashed.is_set():
                crashed.set()
                raise RuntimeError("the container died mid-batch")

    write(aws, name, *range(1, 7))
    emulate(stream_app(handle), replace(mapping, bisect_on_error=False))
    wait_until(lambda: published.count(6) == 1, what="the whole batch again")

    # The batch is delivered again from its first record: at-least-once, never a gap.
    assert published == [1, 2, 3, 1, 2, 3, 4, 5, 6]
    assert failure_records(aws, failure_queue[0], 1, timeout=1) == []


def test_a_poison_record_is_bisected_out_to_the_failure_queue_and_the_records_after_it_are_delivered(
        aws, table, mapping, failure_queue, emulate):
    name, stream_arn = table
    done: list[int] = []
    poison_invocations = [0]

    def handle(event: dict[str, Any]) -> None:
        numbers = [number(r) for r in event["Records"]]
        if 4 in numbers:
            if numbers == [4]:
                poison_invocations[0] += 1
            raise ValueError("record 4 can never be published")
        done.extend(numbers)

    write(aws, name, *range(1, 9))
    emulate(stream_app(handle), mapping)
    (failure,) = failure_records(aws, failure_queue[0], 1)
    wait_until(lambda: 8 in done, what="the records after the poison one")
    write(aws, name, 9)
    wait_until(lambda: 9 in done, what="a change written afterwards")

    assert sorted(done) == [1, 2, 3, 5, 6, 7, 8, 9]
    assert poison_invocations[0] == 3  # the first try and MaximumRetryAttempts (2) retries
    info = failure["DDBStreamBatchInfo"]
    stream = aws("dynamodbstreams")
    shard = stream.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    records = stream.get_records(ShardIterator=stream.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"]
    poison = next(r for r in records if r["dynamodb"]["NewImage"]["n"]["N"] == "4")
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        poison["dynamodb"]["SequenceNumber"], poison["dynamodb"]["SequenceNumber"], 1)
    assert (info["shardId"], info["streamArn"]) == (shard, stream_arn)
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
    assert failure["requestContext"]["requestId"]
    assert failure["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert failure["version"] == "1.0" and failure["timestamp"].endswith("Z")


def test_without_a_destination_a_batch_out_of_retries_is_skipped_and_reading_goes_on(aws, table, mapping, emulate):
    name, _ = table
    batches = Batches()

    def handle(event: dict[str, Any]) -> None:
        batches.record(event)
        if 1 in [number(r) for r in event["Records"]]:
            raise ValueError("never")

    write(aws, name, 1)
    emulate(stream_app(handle), replace(mapping, on_failure=None, maximum_retry_attempts=0))
    wait_until(lambda: batches.numbers == [[1]], what="the one attempt")
    write(aws, name, 2)
    wait_until(lambda: 2 in batches.delivered(), what="the next change")

    assert batches.numbers == [[1], [2]]


# -- wiring -------------------------------------------------------------------------------------


def test_a_mapping_to_a_function_the_app_does_not_have_is_refused(mapping, emulate):
    with pytest.raises(UnsupportedEventSource, match="storefront-dev-elsewhere"):
        emulate(stream_app(lambda event: None), replace(mapping, function_name=PREFIX + "elsewhere"))


def test_a_disabled_mapping_delivers_nothing(aws, table, mapping, emulate):
    batches = Batches()
    emulate(stream_app(batches.record), replace(mapping, enabled=False))

    write(aws, table[0], 1)
    time.sleep(0.5)

    assert batches.numbers == []
