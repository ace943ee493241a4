"""Deliver real events from a running AWS stand-in (moto) to a Chalice app's event handlers.

Each handler is called as Lambda calls it, `app.handler_map[name](event, context)`, so the
app's Chalice middleware runs. What Lambda does around the call is reproduced here:

- SQS event source mappings: batch size, batching window, maximum concurrency, the queue's
  visibility timeout, and ReportBatchItemFailures responses (always on: the deploy template
  sets FunctionResponseTypes for every SQS trigger).
- SNS subscriptions, schedules and EventBridge rules invoke asynchronously: two retries, then
  the event goes to a per-function failure queue, as an on-failure destination would.
- S3 notifications reach the app through a queue, which is plain SQS delivery.

Deviations, all deliberate: each invocation runs in a thread of this process (a timed-out
handler cannot be killed, only abandoned); environment variables such as
AWS_LAMBDA_FUNCTION_NAME are not set per invocation; batches are not cut at Lambda's 6 MB
payload limit; `retry_delay_seconds` shortens Lambda's retry delays so retries show up quickly.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import (
    Chalice,
    CloudWatchEventConfig,
    S3EventConfig,
    ScheduledEventConfig,
    ScheduleExpression,
    SNSEventConfig,
    SQSEventConfig,
)

from devstack.containers import ContainerTimedOut, ProcessContainers
from devstack.schedules import next_fire

__all__ = [
    "EventSourceEmulator",
    "FunctionSettings",
    "FunctionStats",
    "FunctionTimedOut",
    "LambdaContext",
    "UnsupportedEventSource",
]

logger = logging.getLogger(__name__)

# SQS long polls are kept this short so that stop() is prompt.
_POLL_SECONDS = 1
_ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries
_ASYNC_RETRY_DELAYS = (60, 120)  # roughly what Lambda waits before each retry
_THREAD_PREFIX = "devstack-events"
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)
# Keys of an EventBridge event as a target receives it; moto adds "ingestion-time" of its own.
_EVENT_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources",
               "detail")


class UnsupportedEventSource(Exception):
    """The app declares a trigger that the local stack cannot deliver faithfully."""


class FunctionTimedOut(Exception):
    """An invocation ran past the function's timeout."""


@dataclass(frozen=True)
class FunctionSettings:
    """The Lambda settings that shape an invocation."""

    timeout_seconds: float
    memory_mb: int


@dataclass(frozen=True)
class FunctionStats:
    """Counters for one function since start(); `timeouts` are also counted in `errors`."""

    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    records_delivered: int = 0
    records_failed: int = 0


class LambdaContext:
    """The context object of Lambda's Python runtime, for one invocation.

    As in the runtime, `memory_limit_in_mb` is a string (it is read from an environment variable).
    """

    def __init__(
        self,
        function_name: str,
        *,
        settings: FunctionSettings,
        region: str,
        account_id: str,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = _function_arn(region, account_id, function_name)
        self.memory_limit_in_mb = str(settings.memory_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = (
            f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        )
        self.client_context = None
        self.identity = None
        self._deadline = time.monotonic() + settings.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, never below zero."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def fields(self) -> dict[str, Any]:
        """What a container process needs to rebuild this context (see `resumed`)."""
        return {name: getattr(self, name) for name in _CONTEXT_FIELDS}

    @classmethod
    def resumed(cls, fields: dict[str, Any], remaining_ms: int) -> "LambdaContext":
        """This context rebuilt in a container process, its deadline counted from arrival."""
        context = cls.__new__(cls)
        context.__dict__.update(fields, client_context=None, identity=None,
                                _deadline=time.monotonic() + remaining_ms / 1000)
        return context


_CONTEXT_FIELDS = ("function_name", "function_version", "invoked_function_arn", "memory_limit_in_mb",
                   "aws_request_id", "log_group_name", "log_stream_name")


@dataclass
class _Outcome:
    request_id: str
    result: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


@dataclass
class _Function:
    name: str
    function_name: str
    handler: Callable[[dict[str, Any], Any], Any]
    settings: FunctionSettings
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("invocations", "errors", "timeouts", "in_flight", "max_in_flight",
         "records_delivered", "records_failed"), 0))


@dataclass
class _Schedule:
    name: str
    function_name: str
    expression: str
    rule_arn: str
    delivery_queue_url: str = ""
    next_fire: datetime | None = None


class EventSourceEmulator:
    """Runs every event handler of a Chalice app against a running moto server.

    `resolve_queue_url` and `resolve_topic_arn` turn the names used in the decorators (logical
    ids or physical names) into a queue URL and a topic ARN; `settings_for(handler_name)` gives
    the function's timeout and memory. `retry_delay_seconds`, when set, replaces the queue's
    visibility timeout and Lambda's one- and two-minute async retry delays before a failed
    event is retried. `clock` drives the schedules only.
    """

    def __init__(
        self,
        app: Chalice,
        *,
        session: boto3.Session,
        endpoint_url: str,
        region: str,
        account_id: str,
        resolve_queue_url: Callable[[str], str],
        resolve_topic_arn: Callable[[str], str],
        settings_for: Callable[[str], FunctionSettings],
        function_name_prefix: str = "",
        retry_delay_seconds: float | None = None,
        default_max_concurrency: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        containers: ProcessContainers | None = None,
    ) -> None:
        self._app = app
        self._session = session
        self._endpoint_url = endpoint_url
        self._region = region
        self._account_id = account_id
        self._resolve_queue_url = resolve_queue_url
        self._resolve_topic_arn = resolve_topic_arn
        self._settings_for = settings_for
        self._prefix = function_name_prefix
        self._retry_delay = retry_delay_seconds
        self._default_max_concurrency = default_max_concurrency
        self._clock = clock
        self._containers = containers  # None: handlers run in threads of this process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._schedules: dict[str, _Schedule] = {}
        self._loops: list[threading.Thread] = []
        self._invocations: set[threading.Thread] = set()
        self._started = False
        self._sqs: Any = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Wire every event source, then start delivering.

        Raises UnsupportedEventSource, or ValueError for settings AWS would reject.
        """
        if self._started:
            raise RuntimeError("the emulator has already been started")
        self._started = True
        self._check_supported()
        # Every poller and every in-flight invocation may hold a connection at once.
        self._sqs = self._client("sqs", Config(max_pool_connections=64))
        mappings: list[_Mapping] = []
        for source in self._app.event_sources:
            if isinstance(source, SQSEventConfig):
                mappings.append(self._sqs_mapping(source))
            elif isinstance(source, SNSEventConfig):
                mappings.append(self._sns_mapping(source))
            elif isinstance(source, ScheduledEventConfig):
                mappings.append(self._schedule_mapping(source))
            elif isinstance(source, CloudWatchEventConfig):
                mappings.append(self._cw_mapping(source))
        for mapping in mappings:
            self._loop(mapping.run, f"{mapping.function.function_name}:poller")
        if self._schedules:
            self._loop(self._run_schedules, f"{self._prefix}schedules")
        logger.info("delivering events to %d function(s)", len(mappings))

    def stop(self, timeout: float = 10) -> None:
        """Stop polling, let in-flight invocations finish, and wait up to `timeout` seconds."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._loops:
            thread.join(max(0.0, deadline - time.monotonic()))
        while True:
            with self._lock:
                pending = [t for t in self._invocations if t.is_alive()]
            if not pending or time.monotonic() >= deadline:
                break
            pending[0].join(max(0.0, deadline - time.monotonic()))
        if self._containers is not None:
            self._containers.stop(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in self._loops if t.is_alive()] + [t.name for t in pending]
        if left:
            logger.warning("stop(): still running after %.1f s: %s", timeout, ", ".join(left))

    # -- observation and control -------------------------------------------------------------

    @property
    def stats(self) -> dict[str, FunctionStats]:
        """A snapshot of the counters, by handler name."""
        with self._lock:
            return {name: FunctionStats(**f.counters) for name, f in self._functions.items()}

    def schedules(self) -> list[dict[str, Any]]:
        """Each schedule's name, function name, expression and next fire time (UTC, or None)."""
        if self._started:
            with self._lock:
                entries = list(self._schedules.values())
        else:
            now = self._clock()
            entries = []
            for source in self._app.event_sources:
                if isinstance(source, ScheduledEventConfig):
                    expression = _expression(source.schedule_expression)
                    entries.append(
                        _Schedule(
                            name=source.name,
                            function_name=self._prefix + source.name,
                            expression=expression,
                            rule_arn=self._rule_arn(self._prefix + source.name),
                            next_fire=next_fire(expression, now),
                        )
                    )
        return [
            {"name": s.name, "function_name": s.function_name, "expression": s.expression,
             "next_fire": s.next_fire}
            for s in entries
        ]

    def fire_schedule(self, name: str, at: datetime | None = None) -> Any:
        """Invoke the schedule handler `name` now, in this thread, with event time `at`.

        Returns the handler's result; raises what the handler raised, or FunctionTimedOut.
        """
        source = next(
            (s for s in self._app.event_sources
             if isinstance(s, ScheduledEventConfig) and s.name == name),
            None,
        )
        if source is None:
            known = [s.name for s in self._app.event_sources if isinstance(s, ScheduledEventConfig)]
            raise KeyError(f"no schedule named {name!r}; the app has {known}")
        function = self._function(name)
        event = self._scheduled_event(self._rule_arn(function.function_name), at or self._clock())
        outcome = self._invoke(function, event, records=1)
        if outcome.timed_out:
            raise FunctionTimedOut(_timeout_message(function))
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    # -- wiring ------------------------------------------------------------------------------

    def _check_supported(self) -> None:
        supported = (SQSEventConfig, SNSEventConfig, ScheduledEventConfig, CloudWatchEventConfig)
        for source in self._app.event_sources:
            if isinstance(source, S3EventConfig):
                raise UnsupportedEventSource(
                    f"{source.name}: on_s3_event is not supported (SAM cannot package it): "
                    "route S3 notifications through a queue"
                )
            if not isinstance(source, supported):
                raise UnsupportedEventSource(
                    f"{source.name}: {type(source).__name__} triggers are not supported locally"
                )
            if isinstance(source, CloudWatchEventConfig):
                _check_simple_pattern(source.name, source.event_pattern)

    def _client(self, service: str, config: Config | None = None) -> Any:
        return self._session.client(
            service, endpoint_url=self._endpoint_url, region_name=self._region, config=config
        )

    def _function(self, name: str) -> _Function:
        with self._lock:
            function = self._functions.get(name)
            if function is None:
                handler = self._app.handler_map[name]
                _build_middleware_chain(handler)
                function = _Function(
                    name=name,
                    function_name=self._prefix + name,
                    handler=handler,
                    settings=self._settings_for(name),
                )
                self._functions[name] = function
            return function

    def _sqs_mapping(self, source: SQSEventConfig) -> _SqsMapping:
        function = self._function(source.name)
        queue = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
        queue_url = self._resolve_queue_url(queue)
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn", "VisibilityTimeout", "FifoQueue"]
        )["Attributes"]
        _check_sqs_mapping(source, function, attributes)
        return _SqsMapping(
            self,
            function,
            queue_url=queue_url,
            queue_arn=attributes["QueueArn"],
            batch_size=source.batch_size,
            window_seconds=source.maximum_batching_window_in_seconds,
            max_concurrency=source.maximum_concurrency or self._default_max_concurrency,
        )

    def _sns_mapping(self, source: SNSEventConfig) -> _AsyncMapping:
        function = self._function(source.name)
        queue_url, queue_arn = self._delivery_queue(function, "sns-delivery")
        topic_arn = self._resolve_topic_arn(source.topic)
        subscription_arn = self._client("sns").subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        region = self._region

        def to_event(body: str) -> dict[str, Any]:
            return _sns_event(json.loads(body), subscription_arn, region)

        return _AsyncMapping(self, function, queue_url, to_event, self._failure_queue(function))

    def _schedule_mapping(self, source: ScheduledEventConfig) -> _AsyncMapping:
        function = self._function(source.name)
        expression = _expression(source.schedule_expression)
        queue_url, _ = self._delivery_queue(function, "events-delivery")
        schedule = _Schedule(
            name=source.name,
            function_name=function.function_name,
            expression=expression,
            rule_arn=self._rule_arn(function.function_name),
            delivery_queue_url=queue_url,
            next_fire=next_fire(expression, self._clock()),
        )
        with self._lock:
            self._schedules[source.name] = schedule
        return _AsyncMapping(self, function, queue_url, json.loads, self._failure_queue(function))

    def _cw_mapping(self, source: CloudWatchEventConfig) -> _AsyncMapping:
        function = self._function(source.name)
        queue_url, queue_arn = self._delivery_queue(function, "events-delivery")
        events = self._client("events")
        events.put_rule(
            Name=function.function_name,
            EventPattern=json.dumps(source.event_pattern),
            State="ENABLED",
        )
        events.put_targets(
            Rule=function.function_name, Targets=[{"Id": "delivery", "Arn": queue_arn}]
        )

        account_id = self._account_id

        def to_event(body: str) -> dict[str, Any]:
            received = json.loads(body)
            # moto's default target input drops "account"; EventBridge always sends it.
            received.setdefault("account", account_id)
            return {key: received[key] for key in _EVENT_KEYS if key in received}

        return _AsyncMapping(self, function, queue_url, to_event, self._failure_queue(function))

    def _delivery_queue(self, function: _Function, suffix: str) -> tuple[str, str]:
        # Long enough that a message is never redelivered while its invocation still runs.
        visibility = min(43200, math.ceil(function.settings.timeout_seconds) + 30)
        url = self._create_queue(f"{function.function_name}-{suffix}")
        self._sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"VisibilityTimeout": str(visibility)}
        )
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def _failure_queue(self, function: _Function) -> str:
        return self._create_queue(f"{function.function_name}-async-failures")

    def _create_queue(self, name: str) -> str:
        if len(name) > 80:
            raise ValueError(f"queue name {name!r} is longer than SQS's 80 characters")
        return self._sqs.create_queue(QueueName=name)["QueueUrl"]

    def _rule_arn(self, function_name: str) -> str:
        return f"arn:aws:events:{self._region}:{self._account_id}:rule/{function_name}"

    # -- threads -----------------------------------------------------------------------------

    def _loop(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"{_THREAD_PREFIX}:{name}", daemon=True)
        self._loops.append(thread)
        thread.start()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        """Run one invocation (and its settling) in a thread that stop() waits for."""

        def run() -> None:
            try:
                target()
            finally:
                with self._lock:
                    self._invocations.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"{_THREAD_PREFIX}:{name}", daemon=True)
        with self._lock:
            self._invocations.add(thread)
        thread.start()

    # -- invoking ----------------------------------------------------------------------------

    def _invoke(self, function: _Function, event: dict[str, Any], *, records: int) -> _Outcome:
        """Call the handler as Lambda would: in a container process when the emulator has them."""
        context = LambdaContext(
            function.function_name,
            settings=function.settings,
            region=self._region,
            account_id=self._account_id,
        )
        outcome = _Outcome(request_id=context.aws_request_id)
        self._count(function, invocations=1, in_flight=1, records_delivered=records)
        if self._containers is not None:
            try:
                outcome.result = self._containers.invoke(function.name, event, context,
                                                         timeout_s=function.settings.timeout_seconds)
            except ContainerTimedOut:
                outcome.timed_out = True
            except BaseException as error:  # noqa: BLE001 - Lambda reports whatever escapes
                outcome.error = error
        else:
            self._run_in_thread(function, event, context, outcome)
        if not outcome.timed_out and outcome.error is None:
            try:
                json.dumps(outcome.result, default=_json_default)
            except (TypeError, ValueError) as error:
                # Lambda fails an invocation whose result it cannot serialise (Runtime.MarshalError).
                outcome.error = error
        self._count(
            function,
            in_flight=-1,
            errors=0 if outcome.ok else 1,
            timeouts=1 if outcome.timed_out else 0,
        )
        if outcome.timed_out:
            logger.error("%s (request %s): %s", function.function_name, outcome.request_id,
                         _timeout_message(function))
        elif outcome.error is not None:
            logger.error(
                "%s (request %s) failed: %r", function.function_name, outcome.request_id,
                outcome.error, exc_info=outcome.error,
            )
        return outcome

    @staticmethod
    def _run_in_thread(function: _Function, event: dict[str, Any], context: LambdaContext,
                       outcome: _Outcome) -> None:
        """A timeout ends the invocation, not the thread (a thread cannot be killed)."""
        def run() -> None:
            try:
                outcome.result = function.handler(event, context)
            except BaseException as error:  # noqa: BLE001 - Lambda reports whatever escapes
                outcome.error = error

        handler_thread = threading.Thread(
            target=run, name=f"{_THREAD_PREFIX}:{function.function_name}:handler", daemon=True
        )
        handler_thread.start()
        handler_thread.join(function.settings.timeout_seconds)
        if handler_thread.is_alive():
            outcome.timed_out = True

    def _count(self, function: _Function, **deltas: int) -> None:
        with self._lock:
            counters = function.counters
            for key, delta in deltas.items():
                counters[key] += delta
            counters["max_in_flight"] = max(counters["max_in_flight"], counters["in_flight"])

    # -- schedules ---------------------------------------------------------------------------

    def _run_schedules(self) -> None:
        while not self._stop.wait(0.1):
            now = self._clock()
            with self._lock:
                due = [s for s in self._schedules.values() if s.next_fire and s.next_fire <= now]
            for schedule in due:
                fire_at = schedule.next_fire
                assert fire_at is not None
                self._emit_schedule(schedule, fire_at)
                following = next_fire(schedule.expression, fire_at)
                if following is not None and following <= now:
                    # EventBridge does not catch up on fires missed while the clock jumped.
                    following = next_fire(schedule.expression, now)
                with self._lock:
                    schedule.next_fire = following

    def _emit_schedule(self, schedule: _Schedule, at: datetime) -> None:
        event = self._scheduled_event(schedule.rule_arn, at)
        try:
            self._sqs.send_message(QueueUrl=schedule.delivery_queue_url, MessageBody=json.dumps(event))
        except (BotoCoreError, ClientError):
            logger.exception("schedule %s: could not deliver the event for %s", schedule.name, at)

    def _scheduled_event(self, rule_arn: str, at: datetime) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self._account_id,
            "time": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [rule_arn],
            "detail": {},
        }


class _Mapping(ABC):
    """One poller thread that gathers work while a concurrency slot is free."""

    def __init__(self, emulator: EventSourceEmulator, function: _Function, queue_url: str,
                 max_concurrency: int) -> None:
        self.emulator = emulator
        self.function = function
        self.queue_url = queue_url
        self._slots = threading.BoundedSemaphore(max_concurrency)

    @property
    def _sqs(self) -> Any:
        return self.emulator._sqs

    @property
    def _stopping(self) -> threading.Event:
        return self.emulator._stop

    def run(self) -> None:
        while not self._stopping.is_set():
            # A slot is taken before receiving, so no message waits invisible for a free slot.
            if not self._slots.acquire(timeout=0.25):
                continue
            try:
                messages = self._gather()
            except Exception:
                # A poller that died would stop delivery silently; back off and keep polling.
                self._slots.release()
                logger.warning("%s: receiving from %s failed", self.function.function_name,
                               self.queue_url, exc_info=True)
                self._stopping.wait(1)
                continue
            if messages and self._stopping.is_set():
                # Hand back what was gathered rather than leave it invisible until a restart.
                self._set_visibility(messages, 0)
                messages = []
            if not messages:
                self._slots.release()
                continue
            self.emulator._spawn(
                lambda batch=messages: self._deliver_then_release(batch),
                f"{self.function.function_name}:invocation",
            )

    def _deliver_then_release(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._deliver(messages)
        except Exception:
            logger.exception("%s: settling a delivery failed", self.function.function_name)
        finally:
            self._slots.release()

    @abstractmethod
    def _gather(self) -> list[dict[str, Any]]:
        """Receive the next batch, or nothing; returns early when stopping."""

    @abstractmethod
    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the function with `messages` and settle them as Lambda would."""

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for chunk in _chunks(messages, 10):
            response = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                         for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                logger.warning("%s: could not delete a message: %s", self.function.function_name,
                               failure.get("Message"))

    def _set_visibility(self, messages: list[dict[str, Any]], seconds: int) -> None:
        for chunk in _chunks(messages, 10):
            try:
                self._sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"],
                              "VisibilityTimeout": seconds} for i, m in enumerate(chunk)],
                )
            except ClientError:
                # The receipt handle may have expired; the message then reappears on its own.
                logger.debug("changing visibility failed", exc_info=True)


class _SqsMapping(_Mapping):
    """An SQS event source mapping with ReportBatchItemFailures."""

    def __init__(self, emulator: EventSourceEmulator, function: _Function, *, queue_url: str,
                 queue_arn: str, batch_size: int, window_seconds: float,
                 max_concurrency: int) -> None:
        super().__init__(emulator, function, queue_url, max_concurrency)
        self.queue_arn = queue_arn
        self.batch_size = batch_size
        self.window_seconds = window_seconds

    def _gather(self) -> list[dict[str, Any]]:
        """Receive until the batch is full or the window, counted from the first message, ends."""
        messages: list[dict[str, Any]] = []
        window_ends: float | None = None
        while len(messages) < self.batch_size and not self._stopping.is_set():
            wait = _POLL_SECONDS
            if window_ends is not None:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                wait = _POLL_SECONDS if remaining >= _POLL_SECONDS else 0
            received = self._receive(min(10, self.batch_size - len(messages)), wait)
            if received and window_ends is None:
                window_ends = time.monotonic() + self.window_seconds
            messages.extend(received)
            if messages and self.window_seconds == 0:
                break
            if not received and wait == 0 and window_ends is not None:
                self._stopping.wait(min(0.05, max(0.0, window_ends - time.monotonic())))
        return messages

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        emulator = self.emulator
        event = {"Records": [_sqs_record(m, self.queue_arn, emulator._region) for m in messages]}
        outcome = emulator._invoke(self.function, event, records=len(messages))
        ids = [m["MessageId"] for m in messages]
        failed_ids = _failed_item_ids(outcome.result, ids) if outcome.ok else None
        if outcome.ok and failed_ids is None:
            logger.error(
                "%s: batchItemFailures names a missing, empty or unknown itemIdentifier; "
                "the whole batch fails: %r", self.function.function_name, outcome.result,
            )
        if failed_ids is None:
            failed_ids = set(ids)
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        succeeded = [m for m in messages if m["MessageId"] not in failed_ids]
        if succeeded:
            self._delete(succeeded)
        if failed:
            emulator._count(self.function, records_failed=len(failed))
            if outcome.ok:
                logger.warning("%s: %d of %d records failed and will be retried",
                               self.function.function_name, len(failed), len(messages))
            if emulator._retry_delay is not None:
                self._set_visibility(failed, math.ceil(emulator._retry_delay))


class _AsyncMapping(_Mapping):
    """Lambda's asynchronous invocation, one event per call, queued in SQS for durability."""

    def __init__(self, emulator: EventSourceEmulator, function: _Function, queue_url: str,
                 to_event: Callable[[str], dict[str, Any]], failure_queue_url: str) -> None:
        super().__init__(emulator, function, queue_url, emulator._default_max_concurrency)
        self._to_event = to_event
        self._failure_queue_url = failure_queue_url

    def _gather(self) -> list[dict[str, Any]]:
        return self._receive(1, _POLL_SECONDS)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        (message,) = messages
        try:
            event = self._to_event(message["Body"])
        except (ValueError, KeyError, TypeError):
            logger.exception("%s: dropping a message that is not an event: %.200s",
                             self.function.function_name, message["Body"])
            self._delete([message])
            return
        outcome = self.emulator._invoke(self.function, event, records=1)
        if outcome.ok:
            self._delete([message])
            return
        self.emulator._count(self.function, records_failed=1)
        attempt = int(message["Attributes"]["ApproximateReceiveCount"])
        if attempt < _ASYNC_ATTEMPTS:
            delay = self.emulator._retry_delay
            if delay is None:
                delay = _ASYNC_RETRY_DELAYS[min(attempt, len(_ASYNC_RETRY_DELAYS)) - 1]
            logger.warning("%s: attempt %d of %d failed; retrying in %s s",
                           self.function.function_name, attempt, _ASYNC_ATTEMPTS, delay)
            self._set_visibility(messages, math.ceil(delay))
            return
        record = _failure_record(self.emulator, self.function, event, outcome, attempt)
        self._sqs.send_message(QueueUrl=self._failure_queue_url, MessageBody=json.dumps(record))
        self._delete([message])
        logger.error("%s: retries exhausted after %d attempts; event moved to %s",
                     self.function.function_name, attempt, self._failure_queue_url)


# -- event shapes -----------------------------------------------------------------------------


def _build_middleware_chain(handler: Any) -> None:
    """What Chalice's EventSourceHandler does on its first call, done once before any thread calls.

    Chalice builds the chain from a generator on the first call; two threads making that call at
    once get "generator already executing", or a chain without the middleware. Lambda never runs
    one container twice at once, so Chalice has no lock; the emulator does run functions in
    parallel threads of one process.
    """
    if getattr(handler, "handler", False) is None and hasattr(handler, "_build_middleware_handlers"):
        handler.handler = handler._build_middleware_handlers(
            handler.middleware_handlers, original_handler=handler.func)


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attributes[k] for k in _RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        {
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
    )
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = _b64(value["BinaryValue"])
    shaped["stringListValues"] = list(value.get("StringListValues", []))
    shaped["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    shaped["dataType"] = value["DataType"]
    return shaped


def _sns_event(envelope: dict[str, Any], subscription_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SNS event for one SNS notification as SNS delivers it to a queue."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope["Type"],
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope["Timestamp"],
                    "SignatureVersion": envelope["SignatureVersion"],
                    "Signature": envelope["Signature"],
                    "SigningCertUrl": envelope["SigningCertURL"],
                    "UnsubscribeUrl": (
                        f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                        f"&SubscriptionArn={subscription_arn}"
                    ),
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }


def _failure_record(emulator: EventSourceEmulator, function: _Function, event: dict[str, Any],
                    outcome: _Outcome, attempts: int) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination once retries are exhausted."""
    if outcome.timed_out:
        payload: dict[str, Any] = {"errorMessage": _timeout_message(function),
                                   "errorType": "Sandbox.Timedout"}
    else:
        error = outcome.error
        assert error is not None
        payload = {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
    function_arn = _function_arn(emulator._region, emulator._account_id, function.function_name)
    return {
        "version": "1.0",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "requestContext": {
            "requestId": outcome.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": payload,
    }


# -- rules ------------------------------------------------------------------------------------


def _failed_item_ids(result: Any, message_ids: list[str]) -> set[str] | None:
    """The ids a ReportBatchItemFailures response names, or None when it fails the whole batch."""
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


def _check_sqs_mapping(source: SQSEventConfig, function: _Function,
                       queue_attributes: dict[str, str]) -> None:
    """Reject what CreateEventSourceMapping would reject."""
    name = source.name
    fifo = queue_attributes.get("FifoQueue") == "true"
    limit = 10 if fifo else 10000
    if not 1 <= source.batch_size <= limit:
        raise ValueError(f"{name}: batch_size must be 1..{limit}, got {source.batch_size}")
    window = source.maximum_batching_window_in_seconds
    if not 0 <= window <= 300:
        raise ValueError(f"{name}: maximum_batching_window_in_seconds must be 0..300, got {window}")
    if source.batch_size > 10 and window < 1:
        raise ValueError(
            f"{name}: a batch_size above 10 needs maximum_batching_window_in_seconds of at least 1"
        )
    if source.maximum_concurrency is not None and not 2 <= source.maximum_concurrency <= 1000:
        raise ValueError(
            f"{name}: maximum_concurrency must be 2..1000, got {source.maximum_concurrency}"
        )
    visibility = int(queue_attributes["VisibilityTimeout"])
    if visibility < function.settings.timeout_seconds:
        raise ValueError(
            f"{name}: the queue's visibility timeout ({visibility} s) is less than the "
            f"function's timeout ({function.settings.timeout_seconds} s)"
        )


def _check_simple_pattern(name: str, pattern: Any, path: str = "") -> None:
    """Only exact-value patterns are delivered locally: moto's matching is trusted for no more."""
    if not isinstance(pattern, dict) or not pattern:
        raise UnsupportedEventSource(f"{name}: an event pattern must be a non-empty object")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            _check_simple_pattern(name, value, where)
            continue
        exact = isinstance(value, list) and value and all(
            v is None or isinstance(v, (str, int, float, bool)) for v in value
        )
        if key.startswith("$") or not exact:
            raise UnsupportedEventSource(
                f"{name}: on_cw_event pattern {where!r} = {json.dumps(value)} is not supported "
                "locally; only lists of exact values are"
            )


# -- small helpers ----------------------------------------------------------------------------


def _expression(expression: str | ScheduleExpression) -> str:
    return expression if isinstance(expression, str) else expression.to_string()


def _function_arn(region: str, account_id: str, function_name: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"


def _timeout_message(function: _Function) -> str:
    return f"Task timed out after {function.settings.timeout_seconds:.2f} seconds"


def _json_default(value: Any) -> Any:
    # The Python runtime serialises Decimal (DynamoDB's number type); nothing else extra.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
