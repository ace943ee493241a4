"""In-memory stand-ins for the domain events' ports: the bus, the stream, the sales read model and
the once-only claims, with the semantics of their adapters (one write each, applied whole)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.events import Change, DomainEvent
from chalicelib.domain.orders import Order, WriteOutcome
from chalicelib.domain.sales import NameChange, ProductSales, SaleFact
from chalicelib.services.events import StreamBatch

__all__ = ["InMemoryEventBus", "InMemoryChangeStream", "InMemorySalesProjection", "InMemorySalesSources",
           "InMemoryOnce"]


class InMemoryEventBus:
    """Keeps what was put, in order. `refuse_from`: events from this index on (counted over
    the bus's life) are refused, as PutEvents' per-entry failures; `unreachable` raises."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.refuse_from: int | None = None
        self.unreachable = False

    def publish(self, events: Sequence[DomainEvent]) -> int:
        if self.unreachable:
            raise DependencyUnavailable("EventBridge is unreachable")
        put = 0
        for event in events:
            if self.refuse_from is not None and len(self.events) >= self.refuse_from:
                break
            self.events.append(event)
            put += 1
        return put


class InMemoryChangeStream:
    """A stream's records by sequence number; `expired` as when the stream no longer holds them."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, Change | None]]] = {}  # by shard
        self.expired = False

    def changes(self, batch: StreamBatch) -> list[tuple[str, Change | None]] | None:
        if self.expired:
            return None
        first, last = int(batch.first_sequence), int(batch.last_sequence)
        return [(s, c) for s, c in self.records.get(batch.shard_id, []) if first <= int(s) <= last]


@dataclass
class _Row:
    product_id: str
    name: str | None = None
    name_version: int | None = None
    orders: int | None = None
    units: int = 0
    revenue_cents: int = 0
    as_of: datetime | None = None


class InMemorySalesProjection:
    """The sales table: rows by (seller, product) and the counted facts' keys. `writes` counts
    write calls, as the adapter's one transaction or one update per event. Each call is applied
    whole, as DynamoDB applies a write, also while the rebuild's threads write concurrently."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.rows: dict[tuple[str, str], _Row] = {}
        self.counted: set[str] = set()
        self.writes = 0
        self.rebuild_until: datetime | None = None  # the adapter's rebuild marker
        self._clock = clock
        self._lock = threading.Lock()

    def count(self, fact: SaleFact, *, rebuilding: bool = False) -> WriteOutcome:
        with self._lock:
            if not rebuilding and self.rebuild_until is not None and self.rebuild_until >= self._clock():
                self.writes += 1
                raise DependencyUnavailable("the sales read model is being rebuilt; counted after it")
            return self._count(fact)

    def begin_rebuild(self, until: datetime) -> None:
        with self._lock:
            self.rebuild_until = until

    def end_rebuild(self) -> None:
        with self._lock:
            self.rebuild_until = None

    def _count(self, fact: SaleFact) -> WriteOutcome:
        self.writes += 1
        if fact.key in self.counted:
            return WriteOutcome.ALREADY_APPLIED
        self.counted.add(fact.key)
        row = self.rows.setdefault((fact.seller, fact.product_id), _Row(fact.product_id))
        row.name = row.name if row.name is not None else fact.product_name
        row.orders = (row.orders or 0) + fact.orders
        row.units += fact.units
        row.revenue_cents += fact.revenue_cents
        row.as_of = self._clock()
        return WriteOutcome.APPLIED

    def rename(self, change: NameChange) -> WriteOutcome:
        with self._lock:
            return self._rename(change)

    def _rename(self, change: NameChange) -> WriteOutcome:
        self.writes += 1
        row = self.rows.setdefault((change.seller, change.product_id), _Row(change.product_id))
        if row.name_version is not None and row.name_version >= change.version:
            return WriteOutcome.ALREADY_APPLIED
        row.name, row.name_version = change.name, change.version
        return WriteOutcome.APPLIED

    def sales_of(self, seller: str) -> list[ProductSales]:
        with self._lock:
            return [ProductSales(r.product_id, r.name or r.product_id, r.orders, r.units, r.revenue_cents, r.as_of)
                    for (s, _), r in self.rows.items() if s == seller and r.orders is not None]

    def clear(self) -> int:
        with self._lock:
            cleared = len(self.rows) + len(self.counted)
            self.rows.clear()
            self.counted.clear()
            return cleared


@dataclass
class InMemorySalesSources:
    orders_by_id: Callable[[], dict[str, Order]]
    names: list[NameChange] = field(default_factory=list)

    def orders(self) -> Iterator[Order]:
        return iter(list(self.orders_by_id().values()))

    def product_names(self) -> Iterator[NameChange]:
        return iter(list(self.names))


class InMemoryOnce:
    """Keys done, and keys claimed by a caller that has not finished (`claimed`)."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.claimed: set[str] = set()

    def run_once(self, key: str, action: Callable[[], None]) -> bool:
        if key in self.done:
            return False
        if key in self.claimed:
            raise DependencyUnavailable(f"{key} is being done by another caller")
        self.claimed.add(key)
        try:
            action()
        finally:
            self.claimed.discard(key)
        self.done.add(key)
        return True
