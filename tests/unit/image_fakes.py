"""In-memory stand-ins for the image ports, keeping the pynamodb and S3 adapters' contracts.

`InMemoryImageRepository` writes the record and its product's copy together, under the same
conditions as the adapter's transactions, into an `InMemoryProductRepository`'s items.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime
from typing import Any, Sequence

from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable
from chalicelib.domain.images import PENDING, ImageRecord
from chalicelib.services.image_ports import StoredUpload, UploadForm
from tests.unit.fakes import InMemoryProductRepository

__all__ = ["InMemoryImageRepository", "InMemoryUploadBucket", "InMemoryMediaBucket", "Unavailable"]


class Unavailable:
    """Set as a fake's `failing` to make its calls raise as an adapter does for throttling."""

    def __init__(self, what: str) -> None:
        self.what = what

    def check(self) -> None:
        raise DependencyUnavailable(f"{self.what} is throttling")


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


class InMemoryUploadBucket:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str | None]] = {}
        self.forms: list[dict[str, Any]] = []

    def presigned_post(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm:
        self.forms.append({"key": key, "content_type": content_type, "max_bytes": max_bytes,
                           "expires_in": expires_in})
        return UploadForm(url="https://uploads.example/", fields={"key": key, "Content-Type": content_type})

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        self.objects[key] = (data, content_type)

    def open(self, key: str) -> tuple[StoredUpload, Any] | None:
        if key not in self.objects:
            return None
        data, content_type = self.objects[key]
        return StoredUpload(len(data), content_type), io.BytesIO(data)


class InMemoryMediaBucket:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.puts = 0
        self.failing: Unavailable | None = None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.failing is not None:
            self.failing.check()
        self.puts += 1
        self.objects[key] = (data, content_type)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    def url(self, key: str) -> str:
        return f"https://media.example/{key}?signed"
