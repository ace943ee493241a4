"""The sales read model (CQRS): kept by domain events, read in one query, rebuilt from the tables.

`SalesService.on_event` counts an order event's fact once, or takes a product's newer name; each is
one write of the read model. `report` is one query of the seller's rows. `rebuild` holds live
counting back, empties the model and counts every order's facts again through the same writes;
the live counts held back meanwhile are retried by their queue and apply after it, once each (a
fact counts once, whoever counts it first).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.orders import Order, WriteOutcome
from chalicelib.domain.sales import NameChange, ProductSales, SaleFact, SalesReport, fact_of_event, facts_of_order, report
from chalicelib.services.shared import Clock

__all__ = ["SalesProjection", "SalesSources", "SalesService", "Rebuilt", "REBUILD_DEADLINE"]

# Lambda's longest run (rebuild_sales' timeout): past it, a rebuild still marked is one that died.
REBUILD_DEADLINE = timedelta(minutes=15)


class SalesProjection(Protocol):
    def count(self, fact: SaleFact, *, rebuilding: bool = False) -> WriteOutcome:
        """Add the fact to its product's row unless its key was counted (ALREADY_APPLIED).
        Raises DependencyUnavailable while a rebuild runs, unless `rebuilding` (the rebuild's own)."""

    def begin_rebuild(self, until: datetime) -> None:
        """Hold live counting back until end_rebuild, or until `until` (a rebuild that died)."""

    def end_rebuild(self) -> None: ...

    def rename(self, change: NameChange) -> WriteOutcome:
        """Take the name if it is newer than the row's (ALREADY_APPLIED otherwise)."""

    def sales_of(self, seller: str) -> list[ProductSales]:
        """The seller's rows that count at least one fact."""

    def clear(self) -> int:
        """Delete every row and every counted key; returns how many items went."""


class SalesSources(Protocol):
    """The write side, read whole (a rebuild's scans)."""

    def orders(self) -> Iterable[Order]: ...

    def product_names(self) -> Iterable[NameChange]: ...


@dataclass(frozen=True)
class Rebuilt:
    cleared: int
    orders: int
    facts: int
    names: int
    seconds: float


class SalesService:
    def __init__(self, projection: SalesProjection, sources: SalesSources, *, clock: Clock,
                 rebuild_workers: int = 8) -> None:
        self._projection = projection
        self._sources = sources
        self._clock = clock
        self._workers = rebuild_workers

    def on_event(self, detail_type: str, detail: Mapping[str, Any]) -> WriteOutcome | None:
        """Apply one event of the bus; returns what the write did (None: the event counts
        nothing). Raises PoisonMessage for an event without the fields it needs."""
        if detail_type in ("ProductCreated", "ProductUpdated"):
            return self._projection.rename(_name_change(detail))
        fact = fact_of_event(detail_type, detail)
        return None if fact is None else self._projection.count(fact)

    def _count_all(self, row_facts: list[SaleFact]) -> None:
        for fact in row_facts:
            self._projection.count(fact, rebuilding=True)

    def report(self, seller: str) -> SalesReport:
        return report(self._projection.sales_of(seller))

    def rebuild(self) -> Rebuilt:
        """Hold live counting back, empty the read model, count every order's facts and take
        every product's name, then let live counting go on. A rebuild that fails midway can be
        run again; live counting resumes when its deadline passes."""
        started = time.monotonic()
        self._projection.begin_rebuild(self._clock() + REBUILD_DEADLINE)
        try:
            cleared = self._projection.clear()
            orders = facts = names = 0
            # One worker per row at a time: two transactions on one row at once conflict, and
            # DynamoDB refuses one of them (a 10,000-order rebuild of one product failed so).
            by_row: dict[tuple[str, str], list[SaleFact]] = {}
            for order in self._sources.orders():
                orders += 1
                for fact in facts_of_order(order):
                    facts += 1
                    by_row.setdefault((fact.seller, fact.product_id), []).append(fact)
            with ThreadPoolExecutor(self._workers, thread_name_prefix="rebuild-sales") as pool:
                pending: list[Future[Any]] = [pool.submit(self._count_all, row_facts) for row_facts in by_row.values()]
                for change in self._sources.product_names():
                    names += 1
                    pending.append(pool.submit(self._projection.rename, change))
                for future in pending:
                    future.result()  # a write that failed fails the rebuild, which can be run again
        finally:
            self._projection.end_rebuild()
        return Rebuilt(cleared=cleared, orders=orders, facts=facts, names=names,
                       seconds=round(time.monotonic() - started, 3))


def _name_change(detail: Mapping[str, Any]) -> NameChange:
    seller, product_id, name, version = (detail.get(k) for k in ("owner", "product_id", "name", "version"))
    if not (isinstance(seller, str) and isinstance(product_id, str) and isinstance(name, str)
            and type(version) is int):
        raise PoisonMessage("a product event without owner, product_id, name and version")
    return NameChange(seller, product_id, name, version)
