"""Deliver real events from a running AWS stand-in (moto) to a Chalice app's event handlers.

Each handler is called as Lambda calls it, `app.handler_map[name](event, context)`, so the
app's Chalice middleware runs. What Lambda does around the call is reproduced here:

- SQS event source mappings: batch size, batching window, maximum concurrency, the queue's
  visibility timeout, and ReportBatchItemFailures responses (always on: the deploy template
  sets FunctionResponseTypes for every SQS trigger).
- SNS subscriptions, schedules and EventBridge rules invoke asynchronously: two retries, then
  the event goes to a per-function failure queue, as an on-failure destination would.
- S3 notifications reach the app through a queue, which is plain SQS delivery.
- DynamoDB stream event source mappings (from the template: `stream_mappings`) are read by
  devstack/streams.py with Lambda's stream semantics, into the app's pure lambda functions.

Deliberate deviations: without process containers each invocation runs in a thread of this
process (a timed-out handler cannot be killed, only abandoned); batches are not cut at Lambda's
6 MB payload limit; `retry_delay_seconds` shortens Lambda's retry delays so retries show up
quickly.

The pieces: devstack/pollers.py (one poller per trigger), devstack/invocations.py (one call),
devstack/event_shapes.py (the event documents), devstack/event_rules.py (what AWS refuses).
Why this file stays ~480 lines: what is left is the one object that wires every trigger, owns
the threads and counters and answers the console; splitting it would pass its state around.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import (
    Chalice,
    CloudWatchEventConfig,
    ScheduledEventConfig,
    ScheduleExpression,
    SNSEventConfig,
    SQSEventConfig,
)

from devstack import invocations
from devstack.containers import ProcessContainers
from devstack.event_rules import StreamMapping, UnsupportedEventSource, check_sqs_mapping, check_supported
from devstack.event_shapes import eventbridge_event, scheduled_event, sns_event
from devstack.invocations import Function, FunctionTimedOut, Outcome
from devstack.lambda_context import FunctionSettings, LambdaContext, function_arn
from devstack.lambda_tracing import FunctionTracing
from devstack.pollers import AsyncPoller, Poller, SqsPoller
from devstack.schedules import next_fire
from devstack.streams import StreamPoller

__all__ = [
    "EventSourceEmulator",
    "FunctionSettings",
    "FunctionStats",
    "FunctionTimedOut",
    "UnsupportedEventSource",
]

logger = logging.getLogger(__name__)

_THREAD_PREFIX = "devstack-events"
_COUNTERS = ("invocations", "errors", "timeouts", "in_flight", "max_in_flight",
             "records_delivered", "records_failed")


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
    event is retried. `clock` drives the schedules only. `containers` runs handlers in processes
    (None: in threads of this process); `tracing` writes the segments Lambda's active tracing would.
    `stream_mappings` are the template's DynamoDB stream mappings; each names one of the app's
    pure lambda functions by its Lambda name (`function_name_prefix` + handler name).
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
        tracing: FunctionTracing | None = None,
        stream_mappings: Sequence[StreamMapping] = (),
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
        self._tracing = tracing
        self._stream_mappings = tuple(stream_mappings)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._functions: dict[str, Function] = {}
        self._counters: dict[str, dict[str, int]] = {}
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
        check_supported(self._app.event_sources)
        # Every poller and every in-flight invocation may hold a connection at once.
        self._sqs = self._client("sqs", Config(max_pool_connections=64))
        pollers: list[Poller] = []
        for source in self._app.event_sources:
            if isinstance(source, SQSEventConfig):
                pollers.append(self._sqs_poller(source))
            elif isinstance(source, SNSEventConfig):
                pollers.append(self._sns_poller(source))
            elif isinstance(source, ScheduledEventConfig):
                pollers.append(self._schedule_poller(source))
            elif isinstance(source, CloudWatchEventConfig):
                pollers.append(self._cw_poller(source))
        streams = [self._stream_poller(m) for m in self._stream_mappings if m.enabled]
        for poller in pollers:
            self._loop(poller.run, f"{poller.function.function_name}:poller")
        for stream in streams:
            self._loop(stream.run, f"{stream.function.function_name}:{stream.mapping.logical_id}")
        if self._schedules:
            self._loop(self._run_schedules, f"{self._prefix}schedules")
        logger.info("delivering events to %d function(s)", len(pollers) + len(streams))

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
            return {name: FunctionStats(**counters) for name, counters in self._counters.items()}

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
        outcome = self.invoke(function, event, records=1)
        if outcome.timed_out:
            raise FunctionTimedOut(function.timeout_message())
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    # -- what pollers use (devstack.pollers.Invoker) -----------------------------------------

    @property
    def retry_delay_seconds(self) -> float | None:
        return self._retry_delay

    def invoke(self, function: Function, event: dict[str, Any], *, records: int,
               trace_header: str | None = None) -> Outcome:
        """One invocation, counted and logged; never raises (the outcome says how it ended).
        `records`: how many records the event carries (0 for a direct invoke)."""
        context = LambdaContext(
            function.function_name,
            settings=function.settings,
            region=self._region,
            account_id=self._account_id,
        )
        self._count(function, invocations=1, in_flight=1, records_delivered=records)
        started = time.perf_counter()
        outcome = invocations.run(function, event, context, self._containers, self._tracing,
                                  trace_header=trace_header)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._count(
            function,
            in_flight=-1,
            errors=0 if outcome.ok else 1,
            timeouts=1 if outcome.timed_out else 0,
        )
        if outcome.ok and not records:
            logger.info("%s ok %.0f ms", function.function_name, elapsed_ms)
        elif outcome.ok:
            logger.info("%s %d record%s ok %.0f ms", function.function_name, records,
                        "" if records == 1 else "s", elapsed_ms)
        elif outcome.timed_out:
            logger.error("%s (request %s): %s", function.function_name, outcome.request_id,
                         function.timeout_message())
        elif outcome.error is not None:
            logger.error(
                "%s (request %s) failed: %r", function.function_name, outcome.request_id,
                outcome.error, exc_info=outcome.error,
            )
        return outcome

    def count_failed_records(self, function: Function, count: int) -> None:
        self._count(function, records_failed=count)

    def spawn(self, target: Callable[[], None], name: str) -> None:
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

    # -- wiring ------------------------------------------------------------------------------

    def _client(self, service: str, config: Config | None = None) -> Any:
        return self._session.client(  # type: ignore[call-overload]
            service, endpoint_url=self._endpoint_url, region_name=self._region, config=config
        )

    def function(self, name: str) -> Function:
        """The app's function `name` (its Chalice handler name), as this emulator invokes it."""
        return self._function(name)

    def _function(self, name: str) -> Function:
        with self._lock:
            function = self._functions.get(name)
            if function is None:
                handler = self._app.handler_map[name]
                invocations.build_middleware_chain(handler)
                function = Function(
                    name=name,
                    function_name=self._prefix + name,
                    handler=handler,
                    settings=self._settings_for(name),
                )
                self._functions[name] = function
                self._counters[name] = dict.fromkeys(_COUNTERS, 0)
            return function

    def _poller_options(self, function: Function, queue_url: str,
                        max_concurrency: int | None = None) -> dict[str, Any]:
        return {"sqs": self._sqs, "queue_url": queue_url, "stopping": self._stop,
                "max_concurrency": max_concurrency or self._default_max_concurrency}

    def _sqs_poller(self, source: SQSEventConfig) -> SqsPoller:
        function = self._function(source.name)
        queue = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
        queue_url = self._resolve_queue_url(queue)
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn", "VisibilityTimeout", "FifoQueue"]
        )["Attributes"]
        check_sqs_mapping(source, function.settings.timeout_seconds, attributes)
        return SqsPoller(
            self, function, **self._poller_options(function, queue_url, source.maximum_concurrency),
            queue_arn=attributes["QueueArn"], region=self._region, batch_size=source.batch_size,
            window_seconds=source.maximum_batching_window_in_seconds,
        )

    def _stream_poller(self, mapping: StreamMapping) -> StreamPoller:
        name = mapping.function_name.removeprefix(self._prefix)
        pure = {f.name for f in self._app.pure_lambda_functions}
        if not mapping.function_name.startswith(self._prefix) or name not in pure:
            # CloudFormation would fail the mapping: its function does not exist.
            raise UnsupportedEventSource(
                f"{mapping.logical_id}: the stream mapping's function {mapping.function_name} is not one of the "
                f"app's @lambda_function functions ({', '.join(sorted(self._prefix + n for n in pure)) or 'none'})")
        return StreamPoller(self, self._function(name), mapping, streams=self._client("dynamodbstreams"),
                            sqs=self._sqs, region=self._region, account_id=self._account_id, stopping=self._stop)

    def _async_poller(self, function: Function, queue_url: str,
                      to_event: Callable[[str], dict[str, Any]]) -> AsyncPoller:
        return AsyncPoller(
            self, function, **self._poller_options(function, queue_url), to_event=to_event,
            failure_queue_url=self._create_queue(f"{function.function_name}-async-failures"),
            function_arn=function_arn(self._region, self._account_id, function.function_name),
        )

    def _sns_poller(self, source: SNSEventConfig) -> AsyncPoller:
        function = self._function(source.name)
        queue_url, queue_arn = self._delivery_queue(function, "sns-delivery")
        topic_arn = self._resolve_topic_arn(source.topic)
        subscription_arn = self._client("sns").subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        region = self._region

        def to_event(body: str) -> dict[str, Any]:
            return sns_event(json.loads(body), subscription_arn, region)

        return self._async_poller(function, queue_url, to_event)

    def _schedule_poller(self, source: ScheduledEventConfig) -> AsyncPoller:
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
        return self._async_poller(function, queue_url, json.loads)

    def _cw_poller(self, source: CloudWatchEventConfig) -> AsyncPoller:
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
            return eventbridge_event(json.loads(body), account_id)

        return self._async_poller(function, queue_url, to_event)

    def _delivery_queue(self, function: Function, suffix: str) -> tuple[str, str]:
        # Long enough that a message is never redelivered while its invocation still runs.
        visibility = min(43200, math.ceil(function.settings.timeout_seconds) + 30)
        url = self._create_queue(f"{function.function_name}-{suffix}")
        self._sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"VisibilityTimeout": str(visibility)}
        )
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def _create_queue(self, name: str) -> str:
        if len(name) > 80:
            raise ValueError(f"queue name {name!r} is longer than SQS's 80 characters")
        url: str = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        return url

    def _rule_arn(self, function_name: str) -> str:
        return f"arn:aws:events:{self._region}:{self._account_id}:rule/{function_name}"

    def _loop(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"{_THREAD_PREFIX}:{name}", daemon=True)
        self._loops.append(thread)
        thread.start()

    def _count(self, function: Function, **deltas: int) -> None:
        with self._lock:
            counters = self._counters[function.name]
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
        return scheduled_event(rule_arn, at, region=self._region, account_id=self._account_id)


def _expression(expression: str | ScheduleExpression) -> str:
    return expression if isinstance(expression, str) else expression.to_string()
