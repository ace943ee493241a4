"""Products and the rules they follow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from chalicelib.domain.images import ProductImage

__all__ = ["Product", "new_product", "iso", "created_document", "from_created_document"]


def iso(moment: datetime) -> str:
    """The one spelling of a moment in documents and answers: UTC, milliseconds, "Z"."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Product:
    id: str
    owner: str
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    version: int
    created_at: datetime
    updated_at: datetime
    images: tuple[ProductImage, ...] = field(default=())

    def with_changes(self, changes: dict[str, Any], now: datetime) -> "Product":
        return dataclasses.replace(self, **changes, version=self.version + 1, updated_at=now)


def new_product(fields: Mapping[str, Any], *, product_id: str, owner: str, now: datetime) -> Product:
    """A product at version 1 from a validated CreateProduct's fields."""
    return Product(id=product_id, owner=owner, version=1, created_at=now, updated_at=now, **fields)


_FIELDS = ("id", "owner", "name", "description", "price_cents", "currency", "stock", "version")


def created_document(product: Product) -> dict[str, Any]:
    """A new product as JSON-able data, kept with an idempotency key so a replay answers the same
    product. Same keys as the API's product (without images, which a new product has none of),
    so records written before this document existed read back too."""
    return {**{name: getattr(product, name) for name in _FIELDS},
            "created_at": iso(product.created_at), "updated_at": iso(product.updated_at)}


def from_created_document(document: Mapping[str, Any]) -> Product:
    return Product(**{name: document[name] for name in _FIELDS},
                   created_at=datetime.fromisoformat(document["created_at"].replace("Z", "+00:00")),
                   updated_at=datetime.fromisoformat(document["updated_at"].replace("Z", "+00:00")))
