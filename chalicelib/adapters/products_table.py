"""ProductsTable through pynamodb: the product repository, and the cleanup's existence lookup.

Every product also carries the constant `catalog` so the catalogue can be listed, newest first,
through catalog-index instead of a table Scan. One index partition takes ~1,000 writes/s; a
storefront outgrowing that would shard the value (catalog#0..N) and merge pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pynamodb.attributes import (
    MapAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute, VersionAttribute,
)
from pynamodb.exceptions import DeleteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.adapters.dynamodb import answers_throttling, bind, condition_failed, stamp_trace
from chalicelib.adapters.idempotency_table import IdempotencyItem, save_remembering
from chalicelib.adapters.image_table import product_images
from chalicelib.domain.errors import ConditionNotMet
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.paging import Page
from chalicelib.domain.products import Product

__all__ = ["ProductItem", "bind_products_table", "PynamoProductRepository", "PynamoProductLookup"]

CATALOG = "all"


class OwnerIndex(GlobalSecondaryIndex["ProductItem"]):
    class Meta:
        index_name = "owner-index"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class CatalogIndex(GlobalSecondaryIndex["ProductItem"]):
    class Meta:
        index_name = "catalog-index"
        projection = AllProjection()

    catalog = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ProductItem(Model):
    """Declared once; `bind_products_table` names the deployment's table."""

    id = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    catalog = UnicodeAttribute(default=CATALOG)
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    price_cents = NumberAttribute()
    currency = UnicodeAttribute()
    stock = NumberAttribute()
    version = VersionAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    # image id -> status, size and rendition keys: written by adapters/image_table.py only
    images: MapAttribute[str, Any] = MapAttribute(null=True)
    # The X-Ray header of the request that last wrote the item: its stream change's events join
    # that trace (adapters/dynamodb_streams.py reads it).
    trace_header = UnicodeAttribute(null=True)
    owner_index: OwnerIndex
    catalog_index: CatalogIndex


def bind_products_table(*, table: str, region: str) -> type[ProductItem]:
    return bind(ProductItem, table=table, region=region, owner_index=OwnerIndex(), catalog_index=CatalogIndex())


def _to_product(item: ProductItem) -> Product:
    return Product(
        id=item.id, owner=item.owner, name=item.name, description=item.description or "",
        price_cents=int(item.price_cents), currency=item.currency, stock=int(item.stock),
        version=int(item.version or 0), created_at=item.created_at, updated_at=item.updated_at,
        images=product_images(item.images),
    )


class PynamoProductRepository:
    def __init__(self, product: type[ProductItem], idempotency: type[IdempotencyItem], *,
                 trace_header: Callable[[], str | None] = lambda: None) -> None:
        self._product = product
        self._idempotency = idempotency
        self._trace_header = trace_header

    @answers_throttling
    def get(self, product_id: str) -> Product | None:
        try:
            return _to_product(self._product.get(product_id, consistent_read=True))
        except self._product.DoesNotExist:
            return None

    @answers_throttling
    def add(self, product: Product, remember: IdempotencyRecord | None = None) -> None:
        item = self._product(
            product.id, owner=product.owner, name=product.name, description=product.description,
            price_cents=product.price_cents, currency=product.currency, stock=product.stock,
            created_at=product.created_at, updated_at=product.updated_at, trace_header=self._trace_header())
        if remember is None:
            item.save()  # the version attribute makes this a put-if-absent
            return
        save_remembering(item, remember, self._idempotency)

    @answers_throttling
    def update(self, product_id: str, *, owner: str, expected_version: int,
               changes: dict[str, Any], now: datetime) -> Product:
        cls = self._product
        item = cls(product_id, version=expected_version)
        actions = [getattr(cls, name).set(value) for name, value in changes.items()]
        actions.append(cls.updated_at.set(now))
        actions.extend(stamp_trace(cls.trace_header, self._trace_header()))
        try:
            item.update(actions=actions, condition=cls.owner == owner)
        except UpdateError as exc:
            if condition_failed(exc):
                raise ConditionNotMet(product_id) from None
            raise
        return _to_product(item)

    @answers_throttling
    def delete(self, product_id: str, *, owner: str, expected_version: int | None) -> None:
        cls = self._product
        item = cls(product_id)
        if expected_version is not None:
            item.version = expected_version
        try:
            item.delete(condition=cls.owner == owner, add_version_condition=expected_version is not None)
        except DeleteError as exc:
            if condition_failed(exc):
                raise ConditionNotMet(product_id) from None
            raise

    @answers_throttling
    def list(self, *, owner: str | None, limit: int, after: str | None) -> Page[Product]:
        cls = self._product
        index: OwnerIndex | CatalogIndex
        if owner is not None:
            index, hash_key, start = cls.owner_index, owner, {"owner": {"S": owner}}
        else:
            index, hash_key, start = cls.catalog_index, CATALOG, {"catalog": {"S": CATALOG}}
        last_key = {**start, "id": {"S": after}} if after else None
        # One more than asked tells whether a next page exists without an empty last page.
        results = index.query(hash_key, scan_index_forward=False, limit=limit + 1,
                              page_size=limit + 1, last_evaluated_key=last_key)
        items = [_to_product(item) for item in results]
        if len(items) > limit:
            return Page(items[:limit], last_id=items[limit - 1].id)
        return Page(items, last_id=None)


class PynamoProductLookup:
    """Which products still exist (the cleanup keeps what belongs to a live product)."""

    def __init__(self, product: type[ProductItem]) -> None:
        self._product = product

    def existing(self, product_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(product_ids))
        if not ids:
            return set()
        return {item.id for item in self._product.batch_get(ids, consistent_read=True, attributes_to_get=["id"])}
