"""Pollers: what Lambda's event source mappings and asynchronous invocations do with a queue.

A poller receives from one queue while one of its function's concurrency slots is free, hands
the batch to the `Invoker` (the emulator) and settles the messages as Lambda would: deletes what
succeeded, lets what failed come back, and for asynchronous invocations retries twice and then
sends the event to the function's failure queue.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from botocore.exceptions import ClientError

from devstack.event_rules import failed_item_ids
from devstack.event_shapes import failure_record, sqs_record
from devstack.invocations import Function, Outcome

__all__ = ["AsyncPoller", "Invoker", "Poller", "SqsPoller"]

logger = logging.getLogger(__name__)

# SQS long polls are kept this short so that stopping is prompt.
POLL_SECONDS = 1
_ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries
_ASYNC_RETRY_DELAYS = (60, 120)  # roughly what Lambda waits before each retry


class Invoker(Protocol):
    """What a poller needs from the emulator."""

    @property
    def retry_delay_seconds(self) -> float | None:
        """When set, replaces visibility timeouts and async retry delays before a retry."""

    def invoke(self, function: Function, event: dict[str, Any], *, records: int) -> Outcome:
        """Run one invocation and count it."""

    def count_failed_records(self, function: Function, count: int) -> None: ...

    def spawn(self, target: Callable[[], None], name: str) -> None:
        """Run `target` in a thread the emulator waits for when it stops."""


class Poller(ABC):
    """One poller thread that gathers work while a concurrency slot is free."""

    def __init__(self, invoker: Invoker, function: Function, *, sqs: Any, queue_url: str,
                 max_concurrency: int, stopping: threading.Event) -> None:
        self.invoker = invoker
        self.function = function
        self.queue_url = queue_url
        self._sqs = sqs
        self._stopping = stopping
        self._slots = threading.BoundedSemaphore(max_concurrency)

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
            self.invoker.spawn(
                functools.partial(self._deliver_then_release, messages),
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


class SqsPoller(Poller):
    """An SQS event source mapping with ReportBatchItemFailures."""

    def __init__(self, invoker: Invoker, function: Function, *, sqs: Any, queue_url: str,
                 max_concurrency: int, stopping: threading.Event, queue_arn: str, region: str,
                 batch_size: int, window_seconds: float) -> None:
        super().__init__(invoker, function, sqs=sqs, queue_url=queue_url,
                         max_concurrency=max_concurrency, stopping=stopping)
        self.queue_arn = queue_arn
        self.region = region
        self.batch_size = batch_size
        self.window_seconds = window_seconds

    def _gather(self) -> list[dict[str, Any]]:
        """Receive until the batch is full or the window, counted from the first message, ends."""
        messages: list[dict[str, Any]] = []
        window_ends: float | None = None
        while len(messages) < self.batch_size and not self._stopping.is_set():
            wait = POLL_SECONDS
            if window_ends is not None:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                wait = POLL_SECONDS if remaining >= POLL_SECONDS else 0
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
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
        outcome = self.invoker.invoke(self.function, event, records=len(messages))
        ids = [m["MessageId"] for m in messages]
        failed_ids = failed_item_ids(outcome.result, ids) if outcome.ok else None
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
            self.invoker.count_failed_records(self.function, len(failed))
            if outcome.ok:
                logger.warning("%s: %d of %d records failed and will be retried",
                               self.function.function_name, len(failed), len(messages))
            delay = self.invoker.retry_delay_seconds
            if delay is not None:
                self._set_visibility(failed, math.ceil(delay))


class AsyncPoller(Poller):
    """Lambda's asynchronous invocation, one event per call, queued in SQS for durability."""

    def __init__(self, invoker: Invoker, function: Function, *, sqs: Any, queue_url: str,
                 max_concurrency: int, stopping: threading.Event,
                 to_event: Callable[[str], dict[str, Any]], failure_queue_url: str,
                 function_arn: str) -> None:
        super().__init__(invoker, function, sqs=sqs, queue_url=queue_url,
                         max_concurrency=max_concurrency, stopping=stopping)
        self._to_event = to_event
        self._failure_queue_url = failure_queue_url
        self._function_arn = function_arn

    def _gather(self) -> list[dict[str, Any]]:
        return self._receive(1, POLL_SECONDS)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        (message,) = messages
        try:
            event = self._to_event(message["Body"])
        except (ValueError, KeyError, TypeError):
            logger.exception("%s: dropping a message that is not an event: %.200s",
                             self.function.function_name, message["Body"])
            self._delete([message])
            return
        outcome = self.invoker.invoke(self.function, event, records=1)
        if outcome.ok:
            self._delete([message])
            return
        self.invoker.count_failed_records(self.function, 1)
        attempt = int(message["Attributes"]["ApproximateReceiveCount"])
        if attempt < _ASYNC_ATTEMPTS:
            delay = self.invoker.retry_delay_seconds
            if delay is None:
                delay = _ASYNC_RETRY_DELAYS[min(attempt, len(_ASYNC_RETRY_DELAYS)) - 1]
            logger.warning("%s: attempt %d of %d failed; retrying in %s s",
                           self.function.function_name, attempt, _ASYNC_ATTEMPTS, delay)
            self._set_visibility(messages, math.ceil(delay))
            return
        record = failure_record(event, function_arn=self._function_arn, request_id=outcome.request_id,
                                attempts=attempt, error=outcome.error_response(self.function))
        self._sqs.send_message(QueueUrl=self._failure_queue_url, MessageBody=json.dumps(record))
        self._delete([message])
        logger.error("%s: retries exhausted after %d attempts; event moved to %s",
                     self.function.function_name, attempt, self._failure_queue_url)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
