"""Product use cases: create (idempotently), read, list, change, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain import idempotency
from chalicelib.domain.errors import (
    ConditionNotMet, Forbidden, KeyAlreadyUsed, NotFound, VersionMismatch,
)
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.identity import Caller
from chalicelib.domain.ids import is_id
from chalicelib.domain.paging import Page, decode_cursor, encode_cursor
from chalicelib.domain.products import Product, created_document, from_created_document, new_product
from chalicelib.services.shared import Clock, IdempotencyStore, IdFactory

if TYPE_CHECKING:  # pydantic stays off the read path's imports
    from chalicelib.domain.commands import CreateProduct, UpdateProduct

__all__ = ["ProductService", "ProductRepository", "Created", "ListResult"]

_CREATE = "create_product"


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


@dataclass(frozen=True)
class Created:
    status: int
    product: Product
    replayed: bool


@dataclass(frozen=True)
class ListResult:
    items: list[Product]
    next_cursor: str | None


class ProductService:
    def __init__(self, products: ProductRepository, idempotency_store: IdempotencyStore, *,
                 clock: Clock, new_id: IdFactory, idempotency_ttl: timedelta) -> None:
        self._products = products
        self._idempotency = idempotency_store
        self._clock = clock
        self._new_id = new_id
        self._ttl = idempotency_ttl

    def create(self, caller: Caller, command: CreateProduct, *, raw_body: Any,
               idempotency_key: str | None) -> Created:
        """Create a product; with a key, a replay of the same body returns the first response.

        Raises IdempotencyConflict when the key was used with another body.
        """
        now = self._clock()
        product = new_product(command.model_dump(), product_id=self._new_id(), owner=caller.sub, now=now)
        if idempotency_key is None:
            self._products.add(product)
            return Created(201, product, replayed=False)
        key = idempotency.record_key(caller.sub, _CREATE, idempotency_key)
        request_fingerprint = idempotency.fingerprint(raw_body)
        record = idempotency.IdempotencyRecord(
            key=key, fingerprint=request_fingerprint,
            response=idempotency.StoredResponse(201, created_document(product)), expires_at=now + self._ttl)
        try:
            self._products.add(product, remember=record)
            return Created(201, product, replayed=False)
        except KeyAlreadyUsed:
            first = self._idempotency.get(key, now)
            if first is None:  # expired between the write and this read: a fresh start is correct
                self._products.add(product, remember=record)
                return Created(201, product, replayed=False)
            stored = idempotency.replay(first, request_fingerprint)
            return Created(stored.status, from_created_document(stored.body), replayed=True)

    def get(self, product_id: str) -> Product:
        product = self._products.get(product_id) if is_id(product_id) else None
        if product is None:
            raise NotFound(f"product {product_id} does not exist")
        return product

    def list(self, *, owner: str | None, limit: int, cursor: str | None) -> ListResult:
        scope = f"owner:{owner}" if owner is not None else "all"
        after = decode_cursor(cursor, scope) if cursor is not None else None
        page: Page[Product] = self._products.list(owner=owner, limit=limit, after=after)
        next_cursor = encode_cursor(scope, page.last_id) if page.last_id else None
        return ListResult(list(page.items), next_cursor)

    def update(self, caller: Caller, product_id: str, command: UpdateProduct,
               expected_version: int) -> Product:
        """Raises NotFound, Forbidden (not the owner) or VersionMismatch (412)."""
        if not is_id(product_id):
            raise NotFound(f"product {product_id} does not exist")
        try:
            return self._products.update(product_id, owner=caller.sub,
                                         expected_version=expected_version,
                                         changes=command.changes(), now=self._clock())
        except ConditionNotMet:
            raise self._why_not(caller, product_id, expected_version) from None

    def delete(self, caller: Caller, product_id: str, expected_version: int | None) -> None:
        if not is_id(product_id):
            raise NotFound(f"product {product_id} does not exist")
        try:
            self._products.delete(product_id, owner=caller.sub, expected_version=expected_version)
        except ConditionNotMet:
            raise self._why_not(caller, product_id, expected_version) from None

    def _why_not(self, caller: Caller, product_id: str, expected_version: int | None) -> Exception:
        # Only on the failure path: one read tells which condition failed.
        current = self._products.get(product_id)
        if current is None:
            return NotFound(f"product {product_id} does not exist")
        if current.owner != caller.sub:
            return Forbidden("only the product's owner may change it")
        if expected_version is not None and current.version != expected_version:
            return VersionMismatch(expected_version, current.version)
        # The item changed between the write and this read; the client retries with a fresh version.
        return VersionMismatch(expected_version or current.version, current.version)

