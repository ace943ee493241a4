"""Products and the rules they follow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from chalicelib.domain.images import ProductImage

__all__ = ["Product", "new_product"]


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
