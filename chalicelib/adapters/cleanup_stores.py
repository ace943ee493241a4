"""The stores the cleanup reads and trims: image records, products, buckets, idempotency records,
and the cleanup's own cursors (CleanupStateTable).

Image state changes go through PynamoImageRepository, so a failed image is written exactly as
image processing writes one (record and product copy in one conditional transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DeleteError, TransactWriteError
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import EXPIRY_PARTITION
from chalicelib.adapters.image_table import PynamoImageRepository
from chalicelib.domain.cleanup import StoredObject
from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable
from chalicelib.domain.images import PENDING, ImageRecord

__all__ = ["PynamoCleanupImages", "PynamoProductLookup", "S3ObjectStore", "DynamoCursors",
           "PynamoExpiringRecords", "make_cursor_model", "make_expiry_model"]

_PENDING_MARK = "pending"  # pending-index's partition: what image_table writes while an image is pending
_TRANSACTION = 25  # moto's limit for TransactWriteItems (AWS takes 100)
_S3_DELETE = 1000


def _record(item: Model) -> ImageRecord:
    renditions = item.renditions.as_dict() if item.renditions is not None else {}
    return ImageRecord(
        id=item.id, product_id=item.product_id, owner=item.owner, content_type=item.content_type,
        size_bytes=int(item.size_bytes), created_at=item.created_at, status=item.status, error=item.error,
        width=None if item.width is None else int(item.width),
        height=None if item.height is None else int(item.height),
        renditions={str(k): str(v) for k, v in renditions.items()})


class PynamoCleanupImages:
    def __init__(self, image_model: type[Model], product_model: type[Model]) -> None:
        self._image = image_model
        self._repository = PynamoImageRepository(image_model, product_model)

    def stale_pending(self, created_before: datetime, limit: int) -> list[ImageRecord]:
        found = self._image.pending_index.query(_PENDING_MARK, self._image.created_at < created_before,
                                                 limit=limit, page_size=limit)
        return [_record(item) for item in found]

    def get_many(self, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        ids = sorted(set(image_ids))
        if not ids:
            return {}
        return {item.id: _record(item) for item in self._image.batch_get(ids, consistent_read=True)}

    def ids_of_product(self, product_id: str) -> list[str]:
        return [item.id for item in self._image.product_index.query(product_id)]

    def fail(self, record: ImageRecord, now: datetime) -> bool:
        try:
            self._repository.finish(record, now)
            return True
        except ConditionNotMet:
            current = self._repository.get(record.id)
            if current is None or current.status != PENDING:
                return False  # finished meanwhile (or by a cleanup running at the same time)
        try:
            # Still pending, so its product (or the product's copy of it) is gone.
            self._repository.fail_orphan(record, now)
            return True
        except ConditionNotMet:
            return False

    def delete(self, image_ids: Sequence[str]) -> None:
        with self._image.batch_write() as batch:
            for image_id in image_ids:
                batch.delete(self._image(image_id))


class PynamoProductLookup:
    def __init__(self, product_model: type[Model]) -> None:
        self._product = product_model

    def existing(self, product_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(product_ids))
        if not ids:
            return set()
        return {item.id for item in self._product.batch_get(ids, consistent_read=True, attributes_to_get=["id"])}


class S3ObjectStore:
    """One bucket, listed in key order and deleted from in batches."""

    def __init__(self, client: Callable[[], Any], bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def list(self, prefix: str, start_after: str | None, limit: int) -> tuple[list[StoredObject], bool]:
        params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": limit}
        if start_after:
            params["StartAfter"] = start_after
        try:
            page = self._client().list_objects_v2(**params)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"S3 ListObjectsV2 failed: {exc}") from exc
        objects = [StoredObject(o["Key"], o["LastModified"]) for o in page.get("Contents", [])]
        return objects, bool(page.get("IsTruncated"))

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _S3_DELETE):
            batch = keys[start:start + _S3_DELETE]
            try:
                answer = self._client().delete_objects(
                    Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise DependencyUnavailable(f"S3 DeleteObjects failed: {exc}") from exc
            if answer.get("Errors"):
                raise DependencyUnavailable(f"S3 kept objects: {answer['Errors'][:3]}")


def make_cursor_model(*, table: str, region: str) -> type[Model]:
    region_name = region

    class CursorItem(Model):
        class Meta:
            table_name = table
            region = region_name

        pk = UnicodeAttribute(hash_key=True)
        value = UnicodeAttribute(null=True)
        updated_at = UTCDateTimeAttribute(null=True)

    return CursorItem


class DynamoCursors:
    """Where each bucket's listing resumes (None: at the start)."""

    def __init__(self, model: type[Model], clock: Callable[[], datetime]) -> None:
        self._model = model
        self._clock = clock

    def get(self, name: str) -> str | None:
        try:
            return self._model.get(f"cursor#{name}", consistent_read=True).value
        except self._model.DoesNotExist:
            return None

    def put(self, name: str, value: str | None) -> None:
        self._model(f"cursor#{name}", value=value, updated_at=self._clock()).save()


def make_expiry_model(*, idempotency_table: str, region: str) -> type[Model]:
    """IdempotencyTable as the cleanup sees it: keys, expiry, and expiry-index."""
    region_name = region

    class ExpiryIndex(GlobalSecondaryIndex):
        class Meta:
            index_name = "expiry-index"
            projection = KeysOnlyProjection()

        expiry = UnicodeAttribute(hash_key=True)
        expires_at = TTLAttribute(range_key=True)

    class ExpiringRecord(Model):
        class Meta:
            table_name = idempotency_table
            region = region_name

        pk = UnicodeAttribute(hash_key=True)
        expires_at = TTLAttribute()
        expiry = UnicodeAttribute(default=EXPIRY_PARTITION)
        expiry_index = ExpiryIndex()

    return ExpiringRecord


class PynamoExpiringRecords:
    def __init__(self, model: type[Model]) -> None:
        self._model = model

    def expired(self, now: datetime, limit: int) -> list[str]:
        found = self._model.expiry_index.query(EXPIRY_PARTITION, self._model.expires_at <= now, limit=limit,
                                               page_size=limit)
        return [item.pk for item in found]

    def delete(self, keys: Sequence[str], now: datetime) -> int:
        """Conditional deletes, 25 to a transaction; a record renewed since it was listed (its key
        used again) fails the condition, and its batch is redone one record at a time."""
        model = self._model
        still_expired = model.expires_at <= now
        deleted = 0
        for start in range(0, len(keys), _TRANSACTION):
            batch = keys[start:start + _TRANSACTION]
            try:
                with TransactWrite(connection=model._get_connection().connection) as transaction:
                    for key in batch:
                        transaction.delete(model(key), condition=still_expired)
                deleted += len(batch)
                continue
            except TransactWriteError:
                pass
            for key in batch:
                try:
                    model(key).delete(condition=still_expired)
                    deleted += 1
                except DeleteError as exc:
                    if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                        raise
        return deleted
