"""Publishing domain events from the tables' streams, and recovering what the stream gave up on.

`ChangePublisher.publish` turns a shard's changes, in order, into events on the bus and says how
many of them, from the first, are done: the stream consumer reports the first change not done
as its batch's failure, so the event source mapping retries from there and no later change of the
shard overtakes it. `LostChanges.recover` serves the mapping's on-failure queue: it reads the
changes of a batch the mapping gave up on back from the stream, publishes what can be published
now, and logs the rest whole, as lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.errors import DependencyUnavailable, PoisonMessage
from chalicelib.domain.events import Change, DomainEvent, EventSource, events_of
from chalicelib.logs import logger

__all__ = ["EventBus", "ChangeStream", "ChangePublisher", "LostChanges", "Recovered", "StreamBatch"]


class EventBus(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> int:
        """Put `events` on the bus in order; returns how many, from the first, were put (all of
        them, or up to the first the bus refused after retries). Raises DependencyUnavailable
        when the bus could not be reached at all."""


@dataclass(frozen=True)
class StreamBatch:
    """A batch the stream's event source mapping gave up on (Lambda's DDBStreamBatchInfo)."""

    stream_arn: str
    shard_id: str
    first_sequence: str
    last_sequence: str


class ChangeStream(Protocol):
    def changes(self, batch: StreamBatch) -> list[tuple[str, Change | None]] | None:
        """The batch's records read back from the stream, as (sequence number, change), the
        change None for a record that is not a change of ours; None when the stream no longer
        holds them (past its 24 hours' retention, or the stream is gone)."""


class ChangePublisher:
    """The stream consumer's use case: changes of one table to events on the bus, in order."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def publish(self, source: EventSource, changes: Sequence[Change | None]) -> int:
        """Publish the events of `changes` (None: a record that could not be read); returns how
        many changes, from the first, are published. A change that is poison stops the batch
        there: the event source mapping retries it, bisects it out and hands it to the
        on-failure queue, and the changes after it keep their order."""
        events: list[DomainEvent] = []
        owners: list[int] = []  # the change each event came from
        done = len(changes)
        for index, change in enumerate(changes):
            try:
                if change is None:
                    raise PoisonMessage("a stream record that is not a change")
                produced = events_of(source, change)
            except PoisonMessage as exc:
                logger.error("a change that makes no event stops its batch here", extra={
                    "source": str(source), "change_id": getattr(change, "change_id", None), "error": str(exc)})
                done = index
                break
            events.extend(produced)
            owners.extend([index] * len(produced))
        published = self._bus.publish(events) if events else 0
        if published < len(events):
            done = min(done, owners[published])
        return done


@dataclass(frozen=True)
class Recovered:
    published: int  # changes whose events are now on the bus
    lost: int  # changes that make no event (logged whole)
    expired: bool = False  # the stream no longer holds the batch: nothing could be read back


class LostChanges:
    """The on-failure queue's use case: what the stream consumer could not publish, again."""

    def __init__(self, stream: ChangeStream, bus: EventBus, source_of: Callable[[str], EventSource | None]) -> None:
        self._stream = stream
        self._bus = bus
        self._source_of = source_of

    def recover(self, batch: StreamBatch) -> Recovered:
        """Publish the batch's changes that make events (the bus was down for longer than the
        mapping's retries); log the others whole. Raises DependencyUnavailable when the bus
        refuses now too (the message is retried, then kept in the queue's DLQ)."""
        source = self._source_of(batch.stream_arn)
        records = self._stream.changes(batch) if source is not None else None
        if source is None or records is None:
            logger.error("changes lost: their stream no longer holds them; rebuild the read models "
                         "(make rebuild-sales)", extra={"stream_arn": batch.stream_arn, "shard_id": batch.shard_id,
                                                        "first_sequence": batch.first_sequence,
                                                        "last_sequence": batch.last_sequence})
            return Recovered(published=0, lost=0, expired=True)
        published = lost = 0
        for sequence, change in records:
            try:
                if change is None:
                    raise PoisonMessage("a stream record that is not a change")
                events = events_of(source, change)
            except PoisonMessage as exc:
                lost += 1
                logger.error("change lost: it makes no event", extra={
                    "stream_arn": batch.stream_arn, "sequence_number": sequence, "error": str(exc),
                    "change": None if change is None else {"id": change.change_id, "old": change.old,
                                                            "new": change.new}})
                continue
            if events and self._bus.publish(events) < len(events):
                raise DependencyUnavailable("the event bus refused events of a recovered change")
            published += 1
        return Recovered(published=published, lost=lost)
