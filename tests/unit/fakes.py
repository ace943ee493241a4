"""In-memory stand-ins for the service ports, honouring the same contracts as the pynamodb adapters.

`InMemoryProductRepository` and `InMemoryIdempotencyStore` share one record table, as the pynamodb
pair shares the idempotency table: `add(..., remember=...)` writes both or neither.
`InMemoryOrderRepository` reads and writes the products of an `InMemoryProductRepository`, as the
pynamodb adapter's one transaction writes the products table and the orders table together.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable, KeyAlreadyUsed
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.ids import new_id
from chalicelib.domain.orders import CONFIRMED, QUEUED, REJECTED, Order, OrderPlaced
from chalicelib.domain.paging import Page
from chalicelib.domain.products import Product
from chalicelib.services.orders import ALREADY_APPLIED, APPLIED, STOCK_CHANGED

__all__ = ["FakeClock", "SequentialIds", "InMemoryIdempotencyStore", "InMemoryProductRepository",
           "InMemoryOrderRepository", "InMemoryOrderQueue"]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class SequentialIds:
    """Real ULIDs, one millisecond apart, so creation order is id order as in production."""

    def __init__(self, start_ms: int = 1_795_000_000_000) -> None:
        self._next_ms = start_ms
        self.issued: list[str] = []

    def __call__(self) -> str:
        value = new_id(now_ms=self._next_ms, randomness=bytes(10))
        self._next_ms += 1
        self.issued.append(value)
        return value


class InMemoryIdempotencyStore:
    def __init__(self) -> None:
        self.records: dict[str, IdempotencyRecord] = {}

    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        record = self.records.get(key)
        if record is None or record.expires_at <= now:
            return None
        return record


class InMemoryProductRepository:
    def __init__(self, idempotency: InMemoryIdempotencyStore, clock: FakeClock) -> None:
        self.items: dict[str, Product] = {}
        self._idempotency = idempotency
        self._clock = clock  # the pynamodb adapter compares expiry with the wall clock

    def get(self, product_id: str) -> Product | None:
        return self.items.get(product_id)

    def add(self, product: Product, remember: IdempotencyRecord | None = None) -> None:
        if product.id in self.items:
            raise ConditionNotMet(product.id)
        if remember is not None:
            # Same boundary as InMemoryIdempotencyStore.get: live strictly before expires_at.
            taken = self._idempotency.get(remember.key, self._clock())
            if taken is not None:
                raise KeyAlreadyUsed(remember.key)
            self._idempotency.records[remember.key] = remember
        self.items[product.id] = product

    def update(self, product_id: str, *, owner: str, expected_version: int,
               changes: dict[str, Any], now: datetime) -> Product:
        current = self._matching(product_id, owner, expected_version)
        changed = dataclasses.replace(current, **changes, version=current.version + 1, updated_at=now)
        self.items[product_id] = changed
        return changed

    def delete(self, product_id: str, *, owner: str, expected_version: int | None) -> None:
        self._matching(product_id, owner, expected_version)
        del self.items[product_id]

    def list(self, *, owner: str | None, limit: int, after: str | None) -> Page[Product]:
        newest_first = sorted(
            (p for p in self.items.values() if owner is None or p.owner == owner),
            key=lambda p: p.id, reverse=True)
        if after is not None:
            newest_first = [p for p in newest_first if p.id < after]
        if len(newest_first) > limit:
            return Page(newest_first[:limit], last_id=newest_first[limit - 1].id)
        return Page(newest_first, last_id=None)

    def _matching(self, product_id: str, owner: str, expected_version: int | None) -> Product:
        current = self.items.get(product_id)
        if (current is None or current.owner != owner
                or (expected_version is not None and current.version != expected_version)):
            raise ConditionNotMet(product_id)
        return current


class InMemoryOrderRepository:
    """Orders, and the stock of `products`, under the same conditions as the pynamodb adapter."""

    def __init__(self, products: InMemoryProductRepository, idempotency: InMemoryIdempotencyStore,
                 clock: FakeClock) -> None:
        self.items: dict[str, Order] = {}
        self.products = products
        self.batch_reads = 0
        self._idempotency = idempotency
        self._clock = clock
        self.confirm_attempts = 0

    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        if order.id in self.items:
            raise ConditionNotMet(order.id)
        if remember is not None:
            if self._idempotency.get(remember.key, self._clock()) is not None:
                raise KeyAlreadyUsed(remember.key)
            self._idempotency.records[remember.key] = remember
        self.items[order.id] = order

    def remove_queued(self, order_id: str) -> bool:
        order = self.items.get(order_id)
        if order is None or order.status != QUEUED:
            return False
        del self.items[order_id]
        return True

    def get(self, order_id: str) -> Order | None:
        return self.items.get(order_id)

    def stock_of(self, product_id: str) -> int | None:
        product = self.products.get(product_id)
        return None if product is None else product.stock

    def stocks_of(self, product_ids: Any) -> dict[str, int | None]:
        self.batch_reads += 1
        return {product_id: InMemoryOrderRepository.stock_of(self, product_id) for product_id in product_ids}

    def confirm(self, placed: OrderPlaced, now: datetime) -> str:
        self.confirm_attempts += 1
        order = self.items.get(placed.order_id)
        if order is None or order.status != QUEUED:
            return ALREADY_APPLIED  # the order's condition is checked as the adapter reads it first
        product = self.products.get(placed.product_id)
        if product is None or product.stock < placed.quantity:
            return STOCK_CHANGED
        # Both or neither, as one TransactWriteItems.
        self.products.items[product.id] = dataclasses.replace(
            product, stock=product.stock - placed.quantity, version=product.version + 1, updated_at=now)
        self.items[order.id] = dataclasses.replace(order, status=CONFIRMED, updated_at=now)
        return APPLIED

    def reject(self, placed: OrderPlaced, reason: str, now: datetime) -> str:
        order = self.items.get(placed.order_id)
        if order is None or order.status != QUEUED:
            return ALREADY_APPLIED
        self.items[order.id] = dataclasses.replace(order, status=REJECTED, reason=reason, updated_at=now)
        return APPLIED


class InMemoryOrderQueue:
    """What was sent, in order; `failing` makes every send raise as the SQS adapter does."""

    def __init__(self) -> None:
        self.sent: list[tuple[OrderPlaced, str | None]] = []
        self.failing = False

    def send(self, placed: OrderPlaced, trace_header: str | None) -> None:
        if self.failing:
            raise DependencyUnavailable("the order could not be queued: SQS is down")
        self.sent.append((placed, trace_header))
