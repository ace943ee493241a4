"""Delivery as Lambda does it, driven by the test: the real queues, their real redrive policy.

A queue consumer gets batches of its event source mapping's size from its queue; records its
response names (or the whole batch, when the invocation dies) become visible again at once (the
visibility timeout, shortened), and SQS itself moves a message to the dead-letter queue once it
has been received maxReceiveCount times (moto honours the queue's RedrivePolicy). Delivery goes
on until every queue is empty. A schedule is an asynchronous invocation: tried three times, then
kept as a failure record (Lambda's on-failure destination).

How a batch is delivered is the fault under test: once, twice (SQS's at-least-once: a copy of
every message comes back later), concurrently (two invocations of one batch at the same time),
or out of order (everything a queue holds, delivered newest first).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalice.app import SQSEventConfig

from devstack.invocations import build_middleware_chain
from devstack.lambda_context import FunctionSettings, LambdaContext
from tests.integration.faults.injection import running
from tests.support.sqs import LambdaQueue

__all__ = ["Delivery", "ONCE", "TWICE", "CONCURRENTLY", "REVERSED", "ScheduleRun"]

ONCE, TWICE, CONCURRENTLY, REVERSED = "once", "twice", "concurrently", "reversed"
_COPY = "FaultSuiteCopy"  # marks the duplicate of a message, which is not copied again
_ASYNC_ATTEMPTS = 3


@dataclass
class ScheduleRun:
    """One event of a schedule: the result of every attempt that ended, and its failures."""

    results: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    exhausted: bool = False


class Delivery:
    """Delivers an app's queue and schedule events as Lambda would, against a moto server."""

    def __init__(self, app: Any, sqs: Any, queue_url: Callable[[str], str], *, region: str = "us-east-1") -> None:
        self._app = app
        self._sqs = sqs
        self._region = region
        self._sources = {s.name: s for s in app.event_sources if isinstance(s, SQSEventConfig)}
        self._queues: dict[str, LambdaQueue] = {}
        for name, source in self._sources.items():
            self._queues[name] = LambdaQueue(sqs, queue_url(source.queue), region)
        self.repeated: Counter[str] = Counter()  # by handler: records it got a second time, or at once twice
        self._copied: set[str] = set()
        # Told the seconds a failed record waits before it comes back (its queue's visibility
        # timeout), for a scenario whose consumer's behaviour depends on that time having passed.
        self.elapse: Callable[[float], None] | None = None

    def queue(self, handler: str) -> LambdaQueue:
        return self._queues[handler]

    def dead_letters(self, handler: str) -> LambdaQueue:
        """The queue's dead-letter queue, from its own RedrivePolicy."""
        source = self.queue(handler)
        policy = json.loads(self._sqs.get_queue_attributes(
            QueueUrl=source.url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
        name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
        return LambdaQueue(self._sqs, self._sqs.get_queue_url(QueueName=name)["QueueUrl"], self._region)

    # -- queues --------------------------------------------------------------------------------

    def drain(self, handlers: Sequence[str], how: str = ONCE, *, max_rounds: int = 400) -> None:
        """Deliver until the queues of `handlers` are empty; failed records come back at once."""
        for _ in range(max_rounds):
            delivered = False
            for handler in handlers:
                for batch in self._gather(handler, how):
                    self._deliver(handler, batch, how)
                    delivered = True
            if not delivered:
                return
        raise AssertionError(f"the queues of {list(handlers)} did not drain in {max_rounds} rounds")

    def deliver_each_once(self, handler: str) -> None:
        """Deliver every message the queue holds once (a consumer of a dead-letter queue, which
        has no redrive of its own): what fails is left in the queue, visible."""
        held: list[dict[str, Any]] = []
        while more := self._receive(self.queue(handler), 10):
            held += more
        size = self._sources[handler].batch_size
        for start in range(0, len(held), size):
            self._deliver(handler, held[start:start + size], ONCE)

    def _gather(self, handler: str, how: str) -> list[list[dict[str, Any]]]:
        size = self._sources[handler].batch_size
        queue = self.queue(handler)
        if how != REVERSED:
            messages = self._receive(queue, size)
            return [messages] if messages else []
        held: list[dict[str, Any]] = []
        while more := self._receive(queue, 10):
            held += more
        held.reverse()
        return [held[i:i + size] for i in range(0, len(held), size)]

    def _receive(self, queue: LambdaQueue, count: int) -> list[dict[str, Any]]:
        return self._sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=count, WaitTimeSeconds=0,
                                         MessageSystemAttributeNames=["All"],
                                         MessageAttributeNames=["All"]).get("Messages", [])

    def _deliver(self, handler: str, messages: list[dict[str, Any]], how: str) -> None:
        queue = self.queue(handler)
        event = queue.event(messages)
        outcomes = self._invoke_twice_at_once(handler, event) if how == CONCURRENTLY \
            else [self._invoke(handler, event)]
        self.repeated[handler] += len(messages) if how == CONCURRENTLY else \
            sum(_COPY in m.get("MessageAttributes", {}) for m in messages)
        ids = [m["MessageId"] for m in messages]
        # A record is done when any invocation finished it: that one deletes the message.
        failed = set(ids)
        for outcome in outcomes:
            failed &= _failed_ids(outcome, ids)
        queue.delete([m for m in messages if m["MessageId"] not in failed])
        if failed and self.elapse is not None:
            self.elapse(self._visibility_timeout(queue))
        queue.make_visible([m for m in messages if m["MessageId"] in failed])
        if how == TWICE:
            for message in messages:
                if _COPY not in message.get("MessageAttributes", {}) and message["MessageId"] not in self._copied:
                    self._copied.add(message["MessageId"])
                    self._sqs.send_message(QueueUrl=queue.url, MessageBody=message["Body"], MessageAttributes={
                        _COPY: {"DataType": "String", "StringValue": message["MessageId"]}})

    def _visibility_timeout(self, queue: LambdaQueue) -> float:
        return float(self._sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["VisibilityTimeout"])[
            "Attributes"]["VisibilityTimeout"])

    def invoke(self, handler: str, event: dict[str, Any]) -> Any:
        """Invoke any of the app's functions with `event` as Lambda would (a stream's event source
        mapping, say), named `running` so faults aimed at it reach it; its response, or the
        exception that ended the invocation."""
        return self._invoke(handler, event)

    def _invoke(self, handler: str, event: dict[str, Any]) -> Any:
        """The handler's response, or the exception that ended the invocation."""
        function = self._app.handler_map[handler]
        build_middleware_chain(function)  # Chalice builds it lazily, unsafely for two threads
        token = running.set(handler)
        try:
            return function(event, _context(handler))
        except BaseException as exc:  # noqa: BLE001 - a dead invocation fails its whole batch
            return exc
        finally:
            running.reset(token)

    def _invoke_twice_at_once(self, handler: str, event: dict[str, Any]) -> list[Any]:
        outcomes: list[Any] = [None, None]
        start = threading.Barrier(2)

        def run(i: int) -> None:
            start.wait()
            outcomes[i] = self._invoke(handler, event)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        return outcomes

    # -- schedules -----------------------------------------------------------------------------

    def fire(self, handler: str, event: dict[str, Any], how: str = ONCE) -> list[ScheduleRun]:
        """Invoke a schedule handler asynchronously: up to three attempts per delivery; TWICE
        delivers the same event again afterwards, CONCURRENTLY twice at the same time."""
        if how in (TWICE, CONCURRENTLY):
            self.repeated[handler] += 1
        if how == CONCURRENTLY:
            runs = [ScheduleRun(), ScheduleRun()]
            threads = [threading.Thread(target=self._attempts, args=(handler, event, run)) for run in runs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            return runs
        runs = [ScheduleRun() for _ in range(2 if how == TWICE else 1)]
        for run in runs:
            self._attempts(handler, event, run)
        return runs

    def _attempts(self, handler: str, event: dict[str, Any], run: ScheduleRun) -> None:
        for _ in range(_ASYNC_ATTEMPTS):
            outcome = self._invoke(handler, event)
            if not isinstance(outcome, BaseException):
                run.results.append(outcome)
                return
            run.errors.append(outcome)
        run.exhausted = True


def _failed_ids(outcome: Any, ids: list[str]) -> set[str]:
    if isinstance(outcome, BaseException) or not isinstance(outcome, dict):
        return set(ids)
    return {f["itemIdentifier"] for f in outcome.get("batchItemFailures", [])}


def _context(handler: str) -> LambdaContext:
    return LambdaContext(handler, settings=FunctionSettings(timeout_seconds=300, memory_mb=1024),
                         region="us-east-1", account_id="123456789012")
