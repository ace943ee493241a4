"""In-memory stand-in for the image repository, keeping the pynamodb adapter's contract.

`InMemoryImageRepository` writes the record and its product's copy together, under the same
conditions as the adapter's transactions, into an `InMemoryProductRepository`'s items. The
buckets are `tests.unit.fakes.InMemoryBucket`, as every bucket is one `S3Bucket`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from chalicelib.domain.errors import ConditionNotMet
from chalicelib.domain.images import PENDING, ImageRecord

if TYPE_CHECKING:  # tests.unit.fakes imports this module to wire fake_clients
    from tests.unit.fakes import InMemoryProductRepository, Unavailable

__all__ = ["InMemoryImageRepository"]


class InMemoryImageRepository:
    def __init__(self, products: InMemoryProductRepository) -> None:
        self.records: dict[str, ImageRecord] = {}
        self.products = products
        self.failing: Unavailable | None = None
        self.before_write: Any = None  # a hook to change the world between a read and a write

    def add_pending(self, record: ImageRecord, *, seen: int, remove: Sequence[str]) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        product = self.products.items.get(record.product_id)
        if record.id in self.records or product is None or product.owner != record.owner \
                or len(product.images) != seen:
            raise ConditionNotMet(record.id)
        self.records[record.id] = record
        kept = tuple(i for i in product.images if i.id not in remove) + (record.as_product_image(),)
        self.products.items[product.id] = dataclasses.replace(product, images=kept)

    def get(self, image_id: str) -> ImageRecord | None:
        if self.failing is not None:
            self.failing.check()
        return self.records.get(image_id)

    def finish(self, record: ImageRecord, now: datetime) -> None:
        if self.failing is not None:
            self.failing.check()
        current = self.records.get(record.id)
        product = self.products.items.get(record.product_id)
        shown = {i.id: i for i in product.images} if product is not None else {}
        if current is None or current.status != PENDING or record.id not in shown \
                or shown[record.id].status != PENDING:
            raise ConditionNotMet(record.id)
        self.records[record.id] = record
        images = tuple(record.as_product_image() if i.id == record.id else i for i in product.images)
        self.products.items[product.id] = dataclasses.replace(product, images=images)

    def fail_orphan(self, record: ImageRecord, now: datetime) -> None:
        current = self.records.get(record.id)
        if current is None or current.status != PENDING:
            raise ConditionNotMet(record.id)
        self.records[record.id] = record
