"""Image records in DynamoDB: ImagesTable, and their copy on the product item.

Where image state lives, and why (README "Images" says it for users):
- ImagesTable holds one item per upload: what was declared, the state, and, only while the image
  is `pending`, the attribute `pending` = "pending". That attribute is the partition key of the
  sparse GSI `pending-index` (sort key `created_at`), so the hourly cleanup finds images still
  pending after 24 h with one Query of exactly those items, never a Scan. `product-index` lists
  a product's images (for the cleanup of deleted products).
- The product item carries a map `images` (image id -> status, size, rendition keys), so
  GET /products/{id} stays one GetItem. Presigned URLs are made from the keys at read time.
- Every state change writes both in one transaction, conditional on the image still being
  `pending`: a redelivered message finds the condition false and changes nothing. The product's
  `version` is not touched: it counts changes to the product's own fields, so a PATCH racing an
  upload is not refused by image processing it cannot see.

The product side is written with raw update expressions, not pynamodb's Model.update, which
would add to the product's VersionAttribute.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.adapters.dynamodb import (
    CONDITION_FAILED, bind, cancellation_codes, condition_failed, connection_of, is_conflict,
)
from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable
from chalicelib.domain.images import PENDING, ImageRecord, ImageStatus, ProductImage

__all__ = ["ImageItem", "bind_images_table", "to_image_record", "PynamoImageRepository", "PynamoCleanupImages",
           "product_images", "PENDING_INDEX"]

PENDING_INDEX = "pending-index"
_PENDING_MARK = "pending"
_DATETIME = UTCDateTimeAttribute()
_CONFLICT_ATTEMPTS = 3


class PendingIndex(GlobalSecondaryIndex["ImageItem"]):
    class Meta:
        index_name = PENDING_INDEX
        projection = AllProjection()

    pending = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ProductIndex(GlobalSecondaryIndex["ImageItem"]):
    class Meta:
        index_name = "product-index"
        projection = KeysOnlyProjection()

    product_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ImageItem(Model):
    """Declared once; `bind_images_table` names the deployment's table."""

    id = UnicodeAttribute(hash_key=True)
    product_id = UnicodeAttribute()
    owner = UnicodeAttribute()
    status = UnicodeAttribute()
    content_type = UnicodeAttribute()
    size_bytes = NumberAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    pending = UnicodeAttribute(null=True)  # present only while pending: the sparse index key
    error = UnicodeAttribute(null=True)
    width = NumberAttribute(null=True)
    height = NumberAttribute(null=True)
    renditions: MapAttribute[str, Any] = MapAttribute(null=True)
    pending_index: PendingIndex
    product_index: ProductIndex


def bind_images_table(*, table: str, region: str) -> type[ImageItem]:
    return bind(ImageItem, table=table, region=region, pending_index=PendingIndex(), product_index=ProductIndex())


def to_image_record(item: ImageItem) -> ImageRecord:
    renditions = item.renditions.as_dict() if item.renditions is not None else {}
    return ImageRecord(
        id=item.id, product_id=item.product_id, owner=item.owner, content_type=item.content_type,
        size_bytes=int(item.size_bytes), created_at=item.created_at, status=ImageStatus(item.status),
        error=item.error,
        width=_int(item.width), height=_int(item.height),
        renditions={str(k): str(v) for k, v in renditions.items()})


def _value(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value of a str, int or str-keyed mapping."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, Mapping):
        return {"M": {k: _value(v) for k, v in value.items() if v is not None}}
    raise TypeError(f"cannot store {type(value).__name__}")


def _entry(record: ImageRecord) -> dict[str, Any]:
    """The image as its product item carries it."""
    return _value({"status": record.status, "created_at": _DATETIME.serialize(record.created_at),
                   "error": record.error, "width": record.width, "height": record.height,
                   "renditions": dict(record.renditions)})


def product_images(raw: Any) -> tuple[ProductImage, ...]:
    """The product item's `images` map as domain objects, oldest first."""
    if raw is None:
        return ()
    entries = raw.as_dict() if hasattr(raw, "as_dict") else dict(raw)
    images = []
    for image_id, entry in entries.items():
        entry = entry.as_dict() if hasattr(entry, "as_dict") else entry
        renditions = entry.get("renditions") or {}
        renditions = renditions.as_dict() if hasattr(renditions, "as_dict") else renditions
        images.append(ProductImage(
            id=image_id, status=ImageStatus(entry["status"]), created_at=_DATETIME.deserialize(entry["created_at"]),
            error=entry.get("error"), width=_int(entry.get("width")), height=_int(entry.get("height")),
            renditions={str(k): str(v) for k, v in renditions.items()}))
    return tuple(sorted(images, key=lambda i: i.id))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class PynamoImageRepository:
    def __init__(self, image_model: type[ImageItem], product_model: type[Model]) -> None:
        self._image = image_model
        self._products_table: str = product_model.Meta.table_name
        self._images_table: str = image_model.Meta.table_name
        # The product model's connection: one botocore client serves both tables.
        self._connection: Connection = connection_of(product_model)

    def get(self, image_id: str) -> ImageRecord | None:
        try:
            return to_image_record(self._image.get(image_id, consistent_read=True))
        except self._image.DoesNotExist:
            return None

    def add_pending(self, record: ImageRecord, *, seen: int, remove: Sequence[str]) -> None:
        item = self._image(
            record.id, product_id=record.product_id, owner=record.owner, status=PENDING,
            content_type=record.content_type, size_bytes=record.size_bytes, created_at=record.created_at,
            updated_at=record.created_at, pending=_PENDING_MARK)
        put = {"TableName": self._images_table, "Item": item.serialize(),
               "ConditionExpression": "attribute_not_exists(#id)", "ExpressionAttributeNames": {"#id": "id"}}
        names = {"#id": "id", "#owner": "owner", "#images": "images"}
        values: dict[str, Any] = {":owner": {"S": record.owner}, ":seen": {"N": str(seen)}}
        owned = "attribute_exists(#id) AND #owner = :owner"
        if seen == 0:
            # SET on images.<id> needs the map to exist; an empty or absent map is replaced whole.
            update = "SET #images = :images"
            values[":images"] = {"M": {record.id: _entry(record)}}
            condition = f"{owned} AND (attribute_not_exists(#images) OR size(#images) = :seen)"
        else:
            names["#new"] = record.id
            values[":entry"] = _entry(record)
            update = "SET #images.#new = :entry"
            if remove:
                names.update({f"#drop{i}": image_id for i, image_id in enumerate(remove)})
                update += " REMOVE " + ", ".join(f"#images.#drop{i}" for i in range(len(remove)))
            condition = f"{owned} AND size(#images) = :seen"
        product = {"TableName": self._products_table, "Key": {"id": {"S": record.product_id}},
                   "UpdateExpression": update, "ConditionExpression": condition,
                   "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
        self._transact(puts=[put], updates=[product])

    def finish(self, record: ImageRecord, now: datetime) -> None:
        image = self._image_update(record, now)
        product = {
            "TableName": self._products_table, "Key": {"id": {"S": record.product_id}},
            "UpdateExpression": "SET #images.#img = :entry",
            "ConditionExpression": "#images.#img.#status = :pending",
            "ExpressionAttributeNames": {"#images": "images", "#img": record.id, "#status": "status"},
            "ExpressionAttributeValues": {":entry": _entry(record), ":pending": {"S": PENDING}}}
        self._transact(updates=[image, product])

    def fail_orphan(self, record: ImageRecord, now: datetime) -> None:
        cls = self._image
        actions: list[Action] = [cls.status.set(record.status), cls.updated_at.set(now), cls.pending.remove()]
        if record.error is not None:
            actions.append(cls.error.set(record.error))
        try:
            cls(record.id).update(actions=actions, condition=cls.status == PENDING)
        except UpdateError as exc:
            if condition_failed(exc):
                raise ConditionNotMet(record.id) from None
            raise

    def _image_update(self, record: ImageRecord, now: datetime) -> dict[str, Any]:
        names = {"#status": "status", "#updated": "updated_at", "#pending": "pending"}
        values = {":status": {"S": record.status}, ":now": {"S": _DATETIME.serialize(now)},
                  ":pending": {"S": PENDING}}
        sets = ["#status = :status", "#updated = :now"]
        for name, value in (("error", record.error), ("width", record.width), ("height", record.height),
                            ("renditions", dict(record.renditions) or None)):
            if value is not None:
                names[f"#{name}"] = name
                values[f":{name}"] = _value(value)
                sets.append(f"#{name} = :{name}")
        return {"TableName": self._images_table, "Key": {"id": {"S": record.id}},
                "UpdateExpression": f"SET {', '.join(sets)} REMOVE #pending",
                "ConditionExpression": "#status = :pending",
                "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}

    def _transact(self, *, puts: Sequence[dict[str, Any]] = (), updates: Sequence[dict[str, Any]] = ()) -> None:
        """Raises ConditionNotMet when a condition is false, DependencyUnavailable when concurrent
        transactions on the same items (two images of one product finishing at once) keep
        cancelling this one."""
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._connection.transact_write_items(
                    condition_check_items=[], delete_items=[], put_items=list(puts), update_items=list(updates))
                return
            except TransactWriteError as exc:
                if CONDITION_FAILED in cancellation_codes(exc):
                    raise ConditionNotMet(str(exc)) from None
                if not is_conflict(exc):
                    raise
            time.sleep(0.05 * (attempt + 1))  # the other transaction is done within milliseconds
        raise DependencyUnavailable("concurrent writes to the image's product kept conflicting")


class PynamoCleanupImages:
    """The cleanup's view of ImagesTable. State changes go through PynamoImageRepository, so a
    failed image is written exactly as image processing writes one."""

    def __init__(self, image_model: type[ImageItem], product_model: type[Model]) -> None:
        self._image = image_model
        self._repository = PynamoImageRepository(image_model, product_model)

    def stale_pending(self, created_before: datetime, limit: int) -> list[ImageRecord]:
        found = self._image.pending_index.query(_PENDING_MARK, self._image.created_at < created_before,
                                                 limit=limit, page_size=limit)
        return [to_image_record(item) for item in found]

    def get_many(self, image_ids: Iterable[str]) -> dict[str, ImageRecord]:
        ids = sorted(set(image_ids))
        if not ids:
            return {}
        return {item.id: to_image_record(item) for item in self._image.batch_get(ids, consistent_read=True)}

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
