"""The event-source emulator delivers real events from moto to Chalice handlers as Lambda would."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from chalice import Chalice, Rate

from devstack.emulator import (
    EventSourceEmulator,
    FunctionSettings,
    FunctionTimedOut,
    UnsupportedEventSource,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "storefront-dev-"
DEFAULT_SETTINGS = FunctionSettings(timeout_seconds=10, memory_mb=128)

pytestmark = pytest.mark.timeout(60)


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture
def sqs(session: boto3.Session, moto_server: str) -> Any:
    return session.client("sqs", endpoint_url=moto_server)


@pytest.fixture
def emulate(session: boto3.Session, moto_server: str, sqs: Any) -> Iterator[Callable[..., Any]]:
    """Build (and by default start) an emulator for a test app; stopped after the test."""
    emulators: list[EventSourceEmulator] = []

    def emulate(app: Chalice, *, settings: dict[str, FunctionSettings] | None = None,
                start: bool = True, **options: Any) -> EventSourceEmulator:
        by_name = settings or {}
        options.setdefault("function_name_prefix", PREFIX)
        emulator = EventSourceEmulator(
            app,
            session=session,
            endpoint_url=moto_server,
            region=REGION,
            account_id=ACCOUNT,
            resolve_queue_url=lambda name: sqs.get_queue_url(QueueName=name)["QueueUrl"],
            resolve_topic_arn=lambda name: f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
            settings_for=lambda name: by_name.get(name, DEFAULT_SETTINGS),
            **options,
        )
        emulators.append(emulator)
        if start:
            emulator.start()
        return emulator

    yield emulate
    for emulator in emulators:
        emulator.stop()


def unique(name: str) -> str:
    """Names are unique per test: moto's state lives as long as the process."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def make_queue(sqs: Any, name: str, **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def depth(sqs: Any, url: str) -> int:
    """Messages still in the queue, visible or in flight."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def send_all(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": body}
                     for i, body in enumerate(bodies[start:start + 10])],
        )


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class Calls:
    """What a test handler was called with, from whichever thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def record(self, event: Any) -> None:
        with self._lock:
            self.events.append(event.to_dict())
            self.contexts.append(event.context)

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.events) >= count, what=f"{count} invocation(s)")

    def deliveries(self) -> list[tuple[str, str]]:
        """(body, ApproximateReceiveCount) of every SQS record delivered, in order."""
        with self._lock:
            return [(r["body"], r["attributes"]["ApproximateReceiveCount"])
                    for event in self.events for r in event["Records"]]


class FakeClock:
    """A settable UTC clock that counts how often it is read."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._reads = 0
        self._changed = threading.Condition()

    def __call__(self) -> datetime:
        with self._changed:
            self._reads += 1
            self._changed.notify_all()
            return self._now

    def set(self, now: datetime) -> None:
        with self._changed:
            self._now = now

    def wait_for_reads(self, count: int) -> None:
        """Return once the clock has been read `count` more times."""
        with self._changed:
            target = self._reads + count
            assert self._changed.wait_for(lambda: self._reads >= target, timeout=30)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# -- SQS: the record, the context, the middleware -----------------------------------------------


def test_an_sqs_message_arrives_in_lambdas_record_shape_through_the_apps_middleware(
    sqs, emulate
):
    name = unique("orders")
    url = make_queue(sqs, name)
    app = Chalice("probe")
    calls = Calls()
    middleware_saw: list[str] = []

    @app.middleware("all")
    def remember(event, get_response):
        middleware_saw.append(type(event).__name__)
        return get_response(event)

    @app.on_sqs_message(queue=name)
    def consume(event):
        calls.record(event)

    trace_header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody='{"order_id": "o-1"}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "order"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
        MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "String", "StringValue": trace_header}
        },
    )
    emulate(app, settings={"consume": FunctionSettings(timeout_seconds=20, memory_mb=256)})
    calls.wait_for(1)

    (record,) = calls.events[0]["Records"]
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == '{"order_id": "o-1"}'
    assert record["receiptHandle"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["AWSTraceHeader"] == trace_header
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "order", "stringListValues": [], "binaryListValues": [],
                 "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [],
                 "dataType": "Binary"},
    }
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue_arn(sqs, url)
    assert record["awsRegion"] == REGION

    context = calls.contexts[0]
    assert context.function_name == "storefront-dev-consume"
    assert context.invoked_function_arn == (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:storefront-dev-consume"
    )
    assert context.memory_limit_in_mb == "256"
    assert context.log_group_name == "/aws/lambda/storefront-dev-consume"
    assert middleware_saw == ["SQSEvent"]
    wait_until(lambda: depth(sqs, url) == 0, what="the handled message to be deleted")


# -- SQS: batching ------------------------------------------------------------------------------


def test_a_batch_larger_than_one_receive_is_accumulated_up_to_batch_size(sqs, emulate):
    name = unique("bulk")
    url = make_queue(sqs, name)
    send_all(sqs, url, [f"m{i}" for i in range(30)])
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=25, maximum_batching_window_in_seconds=3)
    def bulk(event):
        calls.record(event)

    emulate(app)
    calls.wait_for(2)

    # SQS hands out at most 10 per receive; the full batch is invoked at once, the rest when
    # the window closes.
    assert [len(e["Records"]) for e in calls.events] == [25, 5]
    assert sorted(body for body, _ in calls.deliveries()) == sorted(f"m{i}" for i in range(30))


def test_the_window_keeps_gathering_messages_sent_one_by_one(sqs, emulate):
    name = unique("window")
    url = make_queue(sqs, name)
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=3, maximum_batching_window_in_seconds=20)
    def gather(event):
        calls.record(event)

    emulate(app)
    for body in ["a", "b", "c"]:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    calls.wait_for(1)

    assert [[r["body"] for r in e["Records"]] for e in calls.events] == [["a", "b", "c"]]


def test_a_partial_batch_is_invoked_when_the_window_closes(sqs, emulate):
    name = unique("window")
    url = make_queue(sqs, name)
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=10, maximum_batching_window_in_seconds=1)
    def gather(event):
        calls.record(event)

    emulate(app)
    sqs.send_message(QueueUrl=url, MessageBody="alone")
    calls.wait_for(1)

    assert calls.deliveries() == [("alone", "1")]


def test_without_a_window_a_receive_that_returns_messages_is_invoked_at_once(sqs, emulate):
    name = unique("eager")
    url = make_queue(sqs, name)
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=10)
    def eager(event):
        calls.record(event)

    emulate(app)
    sqs.send_message(QueueUrl=url, MessageBody="first")
    calls.wait_for(1)
    sqs.send_message(QueueUrl=url, MessageBody="second")
    calls.wait_for(2)

    assert [[r["body"] for r in e["Records"]] for e in calls.events] == [["first"], ["second"]]


# -- SQS: concurrency ---------------------------------------------------------------------------


class ConcurrencyProbe:
    """A handler body that notes how many invocations overlap.

    Entries hold until `target` invocations have overlapped once, so reaching the cap does not
    depend on how fast the machine is; after that each entry lingers briefly, giving an emulator
    that ignored the cap the chance to overshoot it.
    """

    def __init__(self, target: int) -> None:
        self._lock = threading.Lock()
        self._target = target
        self._reached = threading.Event()
        self.current = 0
        self.peak = 0
        self.handled = 0

    def __call__(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            if self.current >= self._target:
                self._reached.set()
        self._reached.wait(timeout=20)
        time.sleep(0.2)
        with self._lock:
            self.current -= 1
            self.handled += 1


def test_maximum_concurrency_is_reached_and_never_exceeded(sqs, emulate):
    name = unique("levelled")
    url = make_queue(sqs, name)
    send_all(sqs, url, [f"m{i}" for i in range(9)])
    app = Chalice("probe")
    probe = ConcurrencyProbe(target=3)

    @app.on_sqs_message(queue=name, batch_size=1, maximum_concurrency=3)
    def levelled(event):
        probe()

    emulator = emulate(app, default_max_concurrency=8)
    wait_until(lambda: probe.handled == 9, what="all nine messages")

    assert probe.peak == 3
    stats = emulator.stats["levelled"]
    assert stats.max_in_flight == 3
    assert (stats.invocations, stats.records_delivered, stats.errors) == (9, 9, 0)


def test_without_maximum_concurrency_the_default_cap_applies(sqs, emulate):
    name = unique("capped")
    url = make_queue(sqs, name)
    send_all(sqs, url, [f"m{i}" for i in range(6)])
    app = Chalice("probe")
    probe = ConcurrencyProbe(target=2)

    @app.on_sqs_message(queue=name, batch_size=1)
    def capped(event):
        probe()

    emulate(app, default_max_concurrency=2)
    wait_until(lambda: probe.handled == 6, what="all six messages")

    assert probe.peak == 2


# -- SQS: failures and retries ------------------------------------------------------------------


def test_a_partial_batch_failure_deletes_only_the_successes(sqs, emulate):
    name = unique("partial")
    url = make_queue(sqs, name)
    send_all(sqs, url, ["a", "b", "c"])
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=3)
    def partial(event):
        calls.record(event)
        return {"batchItemFailures": [
            {"itemIdentifier": r.to_dict()["messageId"]} for r in event
            if r.body == "b" and r.to_dict()["attributes"]["ApproximateReceiveCount"] == "1"
        ]}

    emulator = emulate(app, retry_delay_seconds=0)
    calls.wait_for(2)
    wait_until(lambda: depth(sqs, url) == 0, what="the queue to empty")

    assert sorted(calls.deliveries()) == [("a", "1"), ("b", "1"), ("b", "2"), ("c", "1")]
    assert emulator.stats["partial"].records_failed == 1
    assert emulator.stats["partial"].errors == 0


def test_a_failed_record_comes_back_after_the_queues_visibility_timeout(sqs, emulate):
    name = unique("visibility")
    url = make_queue(sqs, name, VisibilityTimeout="2")
    sqs.send_message(QueueUrl=url, MessageBody="retry me")
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name)
    def visibility(event):
        calls.record(event)
        if len(calls.events) == 1:
            raise RuntimeError("first attempt fails")

    emulate(app, settings={"visibility": FunctionSettings(timeout_seconds=2, memory_mb=128)})
    calls.wait_for(2)

    assert calls.deliveries() == [("retry me", "1"), ("retry me", "2")]


def test_a_raised_exception_retries_the_whole_batch_and_is_logged(sqs, emulate, caplog):
    name = unique("explode")
    url = make_queue(sqs, name)
    send_all(sqs, url, ["a", "b", "c"])
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=3)
    def explode(event):
        calls.record(event)
        if len(calls.events) == 1:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="devstack.emulator"):
        emulator = emulate(app, retry_delay_seconds=0)
        wait_until(lambda: len(calls.deliveries()) == 6, what="three records twice")
        wait_until(lambda: depth(sqs, url) == 0, what="the queue to empty")

    assert sorted(calls.deliveries()) == [
        ("a", "1"), ("a", "2"), ("b", "1"), ("b", "2"), ("c", "1"), ("c", "2")
    ]
    stats = emulator.stats["explode"]
    assert (stats.errors, stats.records_failed) == (1, 3)
    assert any(
        "storefront-dev-explode" in r.getMessage() and "boom" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    "failures",
    [
        [{"itemIdentifier": "not-a-message-in-this-batch"}],
        [{"itemIdentifier": ""}],
        [{"itemIdentifier": None}],
        [{"messageId": "wrong key name"}],
        "not a list",
    ],
    ids=["unknown id", "empty id", "null id", "bad key", "not a list"],
)
def test_an_invalid_batch_item_failure_fails_the_whole_batch(sqs, emulate, failures):
    name = unique("invalid")
    url = make_queue(sqs, name)
    send_all(sqs, url, ["a", "b"])
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=2)
    def invalid(event):
        calls.record(event)
        if len(calls.events) == 1:
            return {"batchItemFailures": failures}
        return None

    emulate(app, retry_delay_seconds=0)
    wait_until(lambda: len(calls.deliveries()) == 4, what="both records twice")
    wait_until(lambda: depth(sqs, url) == 0, what="the queue to empty")

    assert sorted(calls.deliveries()) == [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]


@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "done"],
    ids=["None", "empty dict", "empty list", "null list", "a string"],
)
def test_a_response_naming_no_failures_succeeds_the_whole_batch(sqs, emulate, response):
    name = unique("fine")
    url = make_queue(sqs, name)
    send_all(sqs, url, ["a", "b"])
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name, batch_size=2)
    def fine(event):
        calls.record(event)
        return response

    emulator = emulate(app, retry_delay_seconds=0)
    wait_until(lambda: depth(sqs, url) == 0, what="the queue to empty")

    assert sorted(calls.deliveries()) == [("a", "1"), ("b", "1")]
    assert emulator.stats["fine"].records_failed == 0


def test_an_invocation_past_its_timeout_fails_and_its_batch_is_kept(sqs, emulate):
    name = unique("slow")
    url = make_queue(sqs, name, VisibilityTimeout="1")
    sqs.send_message(QueueUrl=url, MessageBody="slow")
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name)
    def slow(event):
        calls.record(event)
        if len(calls.events) == 1:
            time.sleep(3)

    emulator = emulate(
        app, settings={"slow": FunctionSettings(timeout_seconds=0.5, memory_mb=128)},
        retry_delay_seconds=0,
    )
    calls.wait_for(2)
    wait_until(lambda: depth(sqs, url) == 0, what="the retried message to be deleted")

    assert calls.deliveries() == [("slow", "1"), ("slow", "2")]
    stats = emulator.stats["slow"]
    assert (stats.timeouts, stats.errors, stats.records_failed) == (1, 1, 1)


def test_after_max_receive_count_the_message_sits_in_the_dlq(sqs, emulate):
    name = unique("poison")
    dlq_url = make_queue(sqs, f"{name}-dlq")
    url = make_queue(
        sqs, name,
        RedrivePolicy=json.dumps({"deadLetterTargetArn": queue_arn(sqs, dlq_url),
                                  "maxReceiveCount": 2}),
    )
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    app = Chalice("probe")
    calls = Calls()

    @app.on_sqs_message(queue=name)
    def poison(event):
        calls.record(event)
        raise ValueError("cannot handle this")

    emulate(app, retry_delay_seconds=0)
    wait_until(lambda: depth(sqs, dlq_url) == 1, what="the message to reach the DLQ")

    assert depth(sqs, url) == 0
    assert calls.deliveries() == [("poison", "1"), ("poison", "2")]
    moved = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]


# -- S3 notifications reach the app through a queue ---------------------------------------------


def test_an_s3_notification_reaches_an_sqs_handler_through_its_queue(
    sqs, session, moto_server, emulate
):
    name = unique("uploads")
    url = make_queue(sqs, name)
    s3 = session.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": queue_arn(sqs, url), "Events": ["s3:ObjectCreated:*"]}
        ]},
    )
    app = Chalice("probe")
    raw_keys: list[str] = []
    keys: list[str] = []
    test_events: list[str] = []

    @app.on_sqs_message(queue=name, batch_size=10)
    def on_upload(event):
        # What the real app must do: skip S3's test event and decode the keys.
        for record in event:
            notification = json.loads(record.body)
            if notification.get("Event") == "s3:TestEvent":
                test_events.append(notification["Bucket"])
                continue
            for entry in notification["Records"]:
                raw_keys.append(entry["s3"]["object"]["key"])
                keys.append(unquote_plus(entry["s3"]["object"]["key"]))

    emulate(app)
    s3.put_object(Bucket=name, Key="images/new photo+1.jpg", Body=b"jpeg bytes")
    wait_until(lambda: keys, what="the notification")

    assert test_events == [name]
    assert raw_keys == ["images%2Fnew+photo%2B1.jpg"]
    assert keys == ["images/new photo+1.jpg"]


def test_an_app_with_on_s3_event_is_refused_at_start(emulate):
    app = Chalice("probe")

    @app.on_s3_event(bucket="uploads")
    def direct(event):
        pass

    emulator = emulate(app, start=False)
    with pytest.raises(UnsupportedEventSource, match=re.escape(
        "on_s3_event is not supported (SAM cannot package it): "
        "route S3 notifications through a queue"
    )):
        emulator.start()


# -- SNS ------------------------------------------------------------------------------------------


def test_an_sns_message_arrives_as_lambdas_sns_event_one_record_per_call(
    session, moto_server, emulate
):
    topic = unique("events")
    sns = session.client("sns", endpoint_url=moto_server)
    topic_arn = sns.create_topic(Name=topic)["TopicArn"]
    app = Chalice("probe")
    calls = Calls()
    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    name = unique("notify")

    @app.on_sns_message(topic=topic, name=name)
    def notify(event):
        calls.record(event)
        seen.append((event.message, event.subject, event.message_attributes))

    emulate(app)
    published = sns.publish(
        TopicArn=topic_arn, Message='{"order_id": "o-1"}', Subject="order placed",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}},
    )
    sns.publish(TopicArn=topic_arn, Message="no subject")
    calls.wait_for(2)

    first = next(e for e in calls.events if e["Records"][0]["Sns"]["Subject"])
    (record,) = first["Records"]
    assert record["EventSource"] == "aws:sns"
    assert record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"].startswith(topic_arn + ":")
    message = record["Sns"]
    assert message["Type"] == "Notification"
    assert message["MessageId"] == published["MessageId"]
    assert message["TopicArn"] == topic_arn
    assert message["Message"] == '{"order_id": "o-1"}'
    assert message["MessageAttributes"] == {"kind": {"Type": "String", "Value": "order"}}
    assert message["SigningCertUrl"].startswith("https://sns.")
    assert message["UnsubscribeUrl"].endswith(record["EventSubscriptionArn"])
    assert {"Timestamp", "SignatureVersion", "Signature"} <= set(message)
    assert sorted(seen, key=lambda s: s[0]) == [
        ("no subject", None, {}),
        ('{"order_id": "o-1"}', "order placed", {"kind": {"Type": "String", "Value": "order"}}),
    ]
    assert calls.contexts[0].function_name == PREFIX + name


def test_a_failing_sns_handler_is_tried_three_times_then_the_event_is_kept_aside(
    session, moto_server, sqs, emulate, caplog
):
    topic = unique("events")
    sns = session.client("sns", endpoint_url=moto_server)
    topic_arn = sns.create_topic(Name=topic)["TopicArn"]
    app = Chalice("probe")
    calls = Calls()
    name = unique("fragile")

    @app.on_sns_message(topic=topic, name=name)
    def fragile(event):
        calls.record(event)
        raise RuntimeError("downstream is down")

    with caplog.at_level(logging.ERROR, logger="devstack.pollers"):
        emulator = emulate(app, retry_delay_seconds=0)
        sns.publish(TopicArn=topic_arn, Message="important")
        failures_url = sqs.get_queue_url(QueueName=f"{PREFIX}{name}-async-failures")["QueueUrl"]
        wait_until(lambda: depth(sqs, failures_url) == 1, what="the failure record")

    assert len(calls.events) == 3
    (kept,) = sqs.receive_message(QueueUrl=failures_url)["Messages"]
    record = json.loads(kept["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}{name}:$LATEST"
    )
    assert record["requestPayload"]["Records"][0]["Sns"]["Message"] == "important"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "downstream is down"
    delivery_url = sqs.get_queue_url(QueueName=f"{PREFIX}{name}-sns-delivery")["QueueUrl"]
    wait_until(lambda: depth(sqs, delivery_url) == 0, what="the delivery queue to empty")
    assert emulator.stats[name].errors == 3
    assert any("retries exhausted" in r.getMessage() and PREFIX + name in r.getMessage()
               for r in caplog.records)


# -- schedules ------------------------------------------------------------------------------------


def test_a_cron_schedule_fires_on_time_with_eventbridges_scheduled_event(sqs, emulate):
    clock = FakeClock(utc(2026, 1, 1, 0, 0, 30))
    app = Chalice("probe")
    calls = Calls()
    name = unique("hourly")

    @app.schedule("cron(0 * * * ? *)", name=name)
    def hourly(event):
        calls.record(event)

    emulator = emulate(app, clock=clock)
    assert emulator.schedules() == [{
        "name": name, "function_name": PREFIX + name, "expression": "cron(0 * * * ? *)",
        "next_fire": utc(2026, 1, 1, 1, 0),
    }]

    clock.set(utc(2026, 1, 1, 0, 59, 59))
    clock.wait_for_reads(2)
    delivery_url = sqs.get_queue_url(QueueName=f"{PREFIX}{name}-events-delivery")["QueueUrl"]
    assert depth(sqs, delivery_url) == 0
    assert calls.events == []

    clock.set(utc(2026, 1, 1, 1, 0))
    calls.wait_for(1)

    event = calls.events[0]
    assert event == {
        "version": "0",
        "id": event["id"],
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-01-01T01:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{PREFIX}{name}"],
        "detail": {},
    }
    wait_until(lambda: emulator.schedules()[0]["next_fire"] == utc(2026, 1, 1, 2, 0),
               what="the next fire time to move on")


def test_a_rate_schedule_fires_one_period_after_start(emulate):
    clock = FakeClock(utc(2026, 3, 1, 12, 0, 0))
    app = Chalice("probe")
    calls = Calls()
    name = unique("every5")

    @app.schedule(Rate(5, unit=Rate.MINUTES), name=name)
    def every5(event):
        calls.record(event)

    emulator = emulate(app, clock=clock)
    assert emulator.schedules()[0]["expression"] == "rate(5 minutes)"
    assert emulator.schedules()[0]["next_fire"] == utc(2026, 3, 1, 12, 5)

    clock.set(utc(2026, 3, 1, 12, 5, 0))
    calls.wait_for(1)

    assert calls.events[0]["time"] == "2026-03-01T12:05:00Z"


def test_fire_schedule_runs_the_handler_now_and_returns_its_result(emulate):
    app = Chalice("probe")
    name = unique("cleanup")

    @app.schedule("rate(1 hour)", name=name)
    def cleanup(event):
        return {"ran_for": event.time, "rule": event.resources[0]}

    emulator = emulate(app)
    result = emulator.fire_schedule(name, at=utc(2026, 5, 4, 3, 2, 1))

    assert result == {"ran_for": "2026-05-04T03:02:01Z",
                      "rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{PREFIX}{name}"}
    assert emulator.stats[name].invocations == 1
    with pytest.raises(KeyError):
        emulator.fire_schedule("no-such-schedule")


def test_fire_schedule_raises_what_the_handler_raised_or_a_timeout(emulate):
    app = Chalice("probe")

    @app.schedule("rate(1 hour)")
    def broken(event):
        raise LookupError("nothing to clean")

    @app.schedule("rate(1 hour)")
    def stuck(event):
        time.sleep(2)

    emulator = emulate(
        app, start=False,
        settings={"stuck": FunctionSettings(timeout_seconds=0.2, memory_mb=128)},
    )
    with pytest.raises(LookupError, match="nothing to clean"):
        emulator.fire_schedule("broken")
    with pytest.raises(FunctionTimedOut, match="timed out after 0.20 seconds"):
        emulator.fire_schedule("stuck")


def test_the_context_counts_down_from_the_functions_timeout(emulate):
    app = Chalice("probe")

    @app.schedule("rate(1 hour)")
    def countdown(event):
        context = event.context
        first = context.get_remaining_time_in_millis()
        time.sleep(0.2)
        return [first, context.get_remaining_time_in_millis(), context.aws_request_id]

    emulator = emulate(
        app, start=False, settings={"countdown": FunctionSettings(timeout_seconds=3, memory_mb=128)}
    )
    first, second, request_id = emulator.fire_schedule("countdown")
    _, _, other_request_id = emulator.fire_schedule("countdown")

    assert 0 < second < first <= 3000
    assert request_id != other_request_id


# -- EventBridge patterns -----------------------------------------------------------------------


def test_an_exact_match_cw_event_pattern_delivers_matching_events(session, moto_server, emulate):
    events = session.client("events", endpoint_url=moto_server)
    source = unique("storefront.test")
    app = Chalice("probe")
    calls = Calls()
    name = unique("react")

    @app.on_cw_event({"source": [source], "detail-type": ["Thing Happened"]}, name=name)
    def react(event):
        calls.record(event)

    emulate(app)
    events.put_events(Entries=[
        {"Source": "someone.else", "DetailType": "Thing Happened", "Detail": "{}"},
        {"Source": source, "DetailType": "Thing Happened", "Detail": json.dumps({"id": 7})},
    ])
    calls.wait_for(1)

    (event,) = calls.events
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region",
                          "resources", "detail"}
    assert (event["source"], event["detail-type"], event["detail"]) == (
        source, "Thing Happened", {"id": 7}
    )


def test_a_cw_event_pattern_beyond_exact_matching_is_refused_at_start(emulate):
    app = Chalice("probe")

    @app.on_cw_event({"source": [{"prefix": "storefront."}]})
    def react(event):
        pass

    emulator = emulate(app, start=False)
    with pytest.raises(UnsupportedEventSource, match="not supported locally"):
        emulator.start()


# -- settings AWS would reject --------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, visibility, message",
    [
        ({"batch_size": 11}, "30", "needs maximum_batching_window_in_seconds"),
        ({"batch_size": 10001, "maximum_batching_window_in_seconds": 1}, "30", "batch_size"),
        ({"maximum_concurrency": 1}, "30", "maximum_concurrency must be 2..1000"),
        ({}, "5", "visibility timeout"),
    ],
)
def test_a_mapping_aws_would_reject_is_refused_at_start(sqs, emulate, options, visibility,
                                                         message):
    name = unique("rejected")
    make_queue(sqs, name, VisibilityTimeout=visibility)
    app = Chalice("probe")

    @app.on_sqs_message(queue=name, **options)
    def rejected(event):
        pass

    emulator = emulate(app, start=False)
    with pytest.raises(ValueError, match=message):
        emulator.start()


# -- stopping -------------------------------------------------------------------------------------


def test_stop_lets_the_in_flight_invocation_finish_and_leaves_no_threads(sqs, emulate):
    name = unique("inflight")
    url = make_queue(sqs, name)
    prefix = unique("stoptest") + "-"
    app = Chalice("probe")
    entered, finished = threading.Event(), threading.Event()

    @app.on_sqs_message(queue=name)
    def inflight(event):
        entered.set()
        time.sleep(1)
        finished.set()

    @app.schedule("rate(1 hour)")
    def idle(event):
        pass

    emulator = emulate(app, function_name_prefix=prefix)
    sqs.send_message(QueueUrl=url, MessageBody="work")
    assert entered.wait(30)
    emulator.stop(timeout=10)

    assert finished.is_set()
    assert depth(sqs, url) == 0
    assert [t.name for t in threading.enumerate() if prefix in t.name] == []



def test_middleware_chains_are_built_before_any_thread_invokes(sqs, emulate):
    # Chalice builds a handler's middleware chain on its first call, from a generator: two threads
    # making that first call at once fail ("generator already executing") or skip the middleware.
    # The emulator builds every chain when it starts, before its threads call anything.
    name = unique("firstcalls")
    make_queue(sqs, name)
    app = Chalice("probe")
    through_middleware: list[str] = []

    @app.middleware("sqs")
    def count(event, get_response):
        through_middleware.append(event.context.aws_request_id)
        return get_response(event)

    @app.on_sqs_message(queue=name, batch_size=1)
    def first(event):
        return None

    emulate(app)

    assert app.handler_map["first"].handler is not None
    assert through_middleware == []
