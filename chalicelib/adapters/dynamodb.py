"""DynamoDB through pynamodb: product and idempotency repositories.

Models are built by `make_models` for the table names of this deployment, once per container.
Every pynamodb or botocore error that means something to the app becomes one of the project's
exceptions here; nothing above this module sees pynamodb.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from pynamodb.attributes import (
    MapAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute, VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.image_table import product_images
from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable, KeyAlreadyUsed
from chalicelib.domain.idempotency import IdempotencyRecord, StoredResponse
from chalicelib.domain.paging import Page
from chalicelib.domain.products import Product

__all__ = ["Models", "make_models", "PynamoProductRepository", "PynamoIdempotencyStore", "save_remembering",
           "is_transient"]

# Every product also carries this constant so the catalogue can be listed, newest first, through
# catalog-index instead of a table Scan. One index partition takes ~1,000 writes/s; a storefront
# outgrowing that would shard the value (catalog#0..N) and merge pages.
CATALOG = "all"
EXPIRY_PARTITION = "all"
_CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Models:
    product: type[Model]
    idempotency: type[Model]


def make_models(*, products_table: str, idempotency_table: str, region: str) -> Models:
    """pynamodb model classes bound to this deployment's tables (names come from the environment)."""
    region_name = region  # class bodies cannot read a function local of the same name

    class OwnerIndex(GlobalSecondaryIndex):
        class Meta:
            index_name = "owner-index"
            projection = AllProjection()

        owner = UnicodeAttribute(hash_key=True)
        id = UnicodeAttribute(range_key=True)

    class CatalogIndex(GlobalSecondaryIndex):
        class Meta:
            index_name = "catalog-index"
            projection = AllProjection()

        catalog = UnicodeAttribute(hash_key=True)
        id = UnicodeAttribute(range_key=True)

    class ProductItem(Model):
        class Meta:
            table_name = products_table
            region = region_name

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
        images = MapAttribute(null=True)
        owner_index = OwnerIndex()
        catalog_index = CatalogIndex()

    class IdempotencyItem(Model):
        class Meta:
            table_name = idempotency_table
            region = region_name

        pk = UnicodeAttribute(hash_key=True)
        fingerprint = UnicodeAttribute()
        status = NumberAttribute()
        body = UnicodeAttribute()  # the response body as JSON text, replayed verbatim
        expires_at = TTLAttribute()
        # Key of expiry-index (with expires_at): the hourly cleanup queries expired records there
        # instead of scanning the table. One partition, like CATALOG.
        expiry = UnicodeAttribute(default=EXPIRY_PARTITION)

    return Models(product=ProductItem, idempotency=IdempotencyItem)


def _to_product(item: Model) -> Product:
    return Product(
        id=item.id, owner=item.owner, name=item.name, description=item.description or "",
        price_cents=int(item.price_cents), currency=item.currency, stock=int(item.stock),
        version=int(item.version), created_at=item.created_at, updated_at=item.updated_at,
        images=product_images(item.images),
    )


def _condition_failed(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == _CONDITION_FAILED


_TRANSIENT = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
})


def is_transient(exc: Exception) -> bool:
    """A DynamoDB failure that a retry can fix (throttling, service hiccups)."""
    code = getattr(exc, "cause_response_code", None)
    if code is None and hasattr(exc, "response"):  # a plain botocore ClientError
        code = exc.response.get("Error", {}).get("Code")
    return code in _TRANSIENT


def _answers_throttling(method: Callable[..., Any]) -> Callable[..., Any]:
    """Throttling and service hiccups become DependencyUnavailable (the API answers 503)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except PynamoDBException as exc:
            if is_transient(exc):
                raise DependencyUnavailable(
                    f"DynamoDB is busy ({exc.cause_response_code}); retry shortly") from exc
            raise

    return wrapper


class PynamoProductRepository:
    def __init__(self, models: Models) -> None:
        self._models = models
        self._product = models.product

    @_answers_throttling
    def get(self, product_id: str) -> Product | None:
        try:
            return _to_product(self._product.get(product_id, consistent_read=True))
        except self._product.DoesNotExist:
            return None

    @_answers_throttling
    def add(self, product: Product, remember: IdempotencyRecord | None = None) -> None:
        item = self._product(
            product.id, owner=product.owner, name=product.name, description=product.description,
            price_cents=product.price_cents, currency=product.currency, stock=product.stock,
            created_at=product.created_at, updated_at=product.updated_at)
        if remember is None:
            item.save()  # the version attribute makes this a put-if-absent
            return
        save_remembering(item, remember, self._models.idempotency)

    @_answers_throttling
    def update(self, product_id: str, *, owner: str, expected_version: int,
               changes: dict[str, Any], now: datetime) -> Product:
        cls = self._product
        item = cls(product_id, version=expected_version)
        actions = [getattr(cls, name).set(value) for name, value in changes.items()]
        actions.append(cls.updated_at.set(now))
        try:
            item.update(actions=actions, condition=cls.owner == owner)
        except UpdateError as exc:
            if _condition_failed(exc):
                raise ConditionNotMet(product_id) from None
            raise
        return _to_product(item)

    @_answers_throttling
    def delete(self, product_id: str, *, owner: str, expected_version: int | None) -> None:
        cls = self._product
        item = cls(product_id)
        if expected_version is not None:
            item.version = expected_version
        try:
            item.delete(condition=cls.owner == owner, add_version_condition=expected_version is not None)
        except DeleteError as exc:
            if _condition_failed(exc):
                raise ConditionNotMet(product_id) from None
            raise

    @_answers_throttling
    def list(self, *, owner: str | None, limit: int, after: str | None) -> Page[Product]:
        cls = self._product
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


class PynamoIdempotencyStore:
    def __init__(self, models: Models) -> None:
        self._record = models.idempotency

    @_answers_throttling
    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        try:
            item = self._record.get(key, consistent_read=True)
        except self._record.DoesNotExist:
            return None
        if item.expires_at <= now:  # TTL deletes lazily (and moto never does)
            return None
        return IdempotencyRecord(
            key=item.pk, fingerprint=item.fingerprint,
            response=StoredResponse(int(item.status), json.loads(item.body)),
            expires_at=item.expires_at)


def save_remembering(item: Model, remember: IdempotencyRecord, record_cls: type[Model],
                     condition: Any = None) -> None:
    """Save `item` (under `condition`) and the idempotency record in one transaction.

    Raises KeyAlreadyUsed when the key is live (or a concurrent twin is writing it).
    """
    record = record_cls(
        remember.key, fingerprint=remember.fingerprint, status=remember.response.status,
        body=json.dumps(remember.response.body, separators=(",", ":")),
        expires_at=remember.expires_at)
    now = datetime.now(timezone.utc)
    # Same boundary as PynamoIdempotencyStore.get (expired once expires_at <= now; TTL values
    # are whole seconds): if they disagreed, a record expiring this second would be neither
    # replayable nor replaceable.
    key_is_free = record_cls.pk.does_not_exist() | (record_cls.expires_at <= now)
    try:
        with TransactWrite(connection=_connection(type(item))) as transaction:
            transaction.save(item, condition=condition)
            transaction.save(record, condition=key_is_free)
    except TransactWriteError as exc:
        reasons = exc.cancellation_reasons
        if len(reasons) == 2 and reasons[1] is not None and reasons[1].code == "ConditionalCheckFailed":
            raise KeyAlreadyUsed(remember.key) from None
        if exc.cause_response_code == "TransactionConflictException" or any(
                r is not None and r.code == "TransactionConflict" for r in reasons):
            # A concurrent twin is writing the same key right now: the answer is its answer.
            raise KeyAlreadyUsed(remember.key) from None
        raise


def _connection(model: type[Model]) -> Connection:
    # The model's own connection, so a transaction reuses its botocore session and client
    # (a new Connection would build another session: ~0.15 s on a cold container).
    return model._get_connection().connection
