"""The small interfaces services depend on; adapters implement them, unit tests fake them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Protocol

from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.paging import Page
from chalicelib.domain.products import Product

__all__ = ["ProductRepository", "IdempotencyStore", "Clock", "IdFactory"]

Clock = Callable[[], datetime]
IdFactory = Callable[[], str]


class ProductRepository(Protocol):
    def get(self, product_id: str) -> Product | None: ...

    def add(self, product: Product, remember: IdempotencyRecord | None = None) -> None:
        """Store a new product, and `remember` in the same atomic write.

        Raises KeyAlreadyUsed when `remember`'s key is taken.
        """

    def update(self, product_id: str, *, owner: str, expected_version: int,
               changes: dict[str, Any], now: datetime) -> Product:
        """Apply `changes` if the product exists, is `owner`'s and is at `expected_version`;
        raises ConditionNotMet otherwise."""

    def delete(self, product_id: str, *, owner: str, expected_version: int | None) -> None:
        """Raises ConditionNotMet unless the product exists, is `owner`'s (and at the version)."""

    def list(self, *, owner: str | None, limit: int, after: str | None) -> Page[Product]: ...


class IdempotencyStore(Protocol):
    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        """The live record under `key`, or None (also when it has expired)."""
