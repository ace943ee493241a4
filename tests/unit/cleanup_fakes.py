"""In-memory stand-ins for the cleanup's ports, with the adapters' conditions. Its buckets are
`tests.unit.fakes.InMemoryBucket`."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Sequence

from chalicelib.domain.images import PENDING, ImageRecord

if TYPE_CHECKING:  # tests.unit.fakes imports this module to wire fake_clients
    from tests.unit.fakes import InMemoryProductRepository

__all__ = ["InMemoryCleanupImages", "InMemoryProductLookup", "InMemoryCursors", "InMemoryExpiringRecords"]


class InMemoryCleanupImages:
    """The images table's records (an `InMemoryImageRepository`'s, in fake_clients)."""

    def __init__(self, records: dict[str, ImageRecord] | None = None) -> None:
        self.records: dict[str, ImageRecord] = {} if records is None else records

    def add(self, record: ImageRecord) -> ImageRecord:
        self.records[record.id] = record
        return record

    def stale_pending(self, created_before: datetime, limit: int) -> list[ImageRecord]:
        stale = sorted((r for r in self.records.values() if r.status == PENDING and r.created_at < created_before),
                       key=lambda r: r.created_at)
        return stale[:limit]

    def get_many(self, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        return {i: self.records[i] for i in image_ids if i in self.records}

    def ids_of_product(self, product_id: str) -> list[str]:
        return sorted(i for i, r in self.records.items() if r.product_id == product_id)

    def fail(self, record: ImageRecord, now: datetime) -> bool:
        current = self.records.get(record.id)
        if current is None or current.status != PENDING:
            return False
        self.records[record.id] = dataclasses.replace(current, status=record.status, error=record.error)
        return True

    def delete(self, image_ids: Sequence[str]) -> None:
        for image_id in image_ids:
            self.records.pop(image_id, None)


class InMemoryProductLookup:
    """Which products exist, read from the product repository, as the adapter reads the table."""

    def __init__(self, products: InMemoryProductRepository) -> None:
        self.products = products

    def existing(self, product_ids: Iterable[str]) -> set[str]:
        return set(self.products.items) & set(product_ids)


class InMemoryCursors:
    def __init__(self) -> None:
        self.values: dict[str, str | None] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str | None) -> None:
        self.values[name] = value


class InMemoryExpiringRecords:
    def __init__(self) -> None:
        self.expires: dict[str, datetime] = {}
        # Runs between listing and deleting, so a test can renew a key in that gap.
        self.between: object = None

    def expired(self, now: datetime, limit: int) -> list[str]:
        return sorted((k for k, at in self.expires.items() if at <= now), key=self.expires.get)[:limit]

    def delete(self, keys: Sequence[str], now: datetime) -> int:
        if callable(self.between):
            hook, self.between = self.between, None
            hook()
        gone = [k for k in keys if k in self.expires and self.expires[k] <= now]
        for key in gone:
            del self.expires[key]
        return len(gone)
