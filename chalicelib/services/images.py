"""Image use cases: request an upload (the API), and turn an upload into renditions (the queue).

    request_upload: check the product, record the image `pending`, hand out a presigned POST
    process_upload: key -> record -> download -> checks -> decode -> resize -> encode -> upload
                    -> `ready` (or `failed` with a reason), as one conditional write

Failures: anything wrong with the file itself is permanent (the image becomes `failed` and the
message is acknowledged); anything else (throttling, timeouts, a missing bucket) raises, so the
record is retried and, after the queue's maxReceiveCount, parked in its DLQ with the image
still `pending` for the cleanup to resolve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable, Forbidden, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.ids import is_id
from chalicelib.domain.image_files import check_object, inspect_file
from chalicelib.domain.images import (
    ACCEPTED_TYPES, FAILED, MAX_IMAGES_PER_PRODUCT, PENDING, READY, ImageRecord, ImageRejected, ProductImage,
    Rendition, TooManyImages, parse_upload_key, rendition_key, rendition_plan,
)
from chalicelib.domain.storage import ObjectInfo, UploadForm
from chalicelib.logs import logger
from chalicelib.services.products import ProductRepository
from chalicelib.services.shared import Clock, IdFactory

__all__ = ["ImageService", "UploadTicket", "Processed", "UPLOAD_EXPIRES_IN", "PRODUCT_GONE", "ImageRepository",
           "UploadBucket", "MediaBucket", "ImageProcessor", "DecodedImage", "Encoded", "Steps"]

UPLOAD_EXPIRES_IN = 15 * 60
_ADD_ATTEMPTS = 3
PRODUCT_GONE = "the product was deleted before its image was processed"


# -- ports: what the image use cases need from the outside ---------------------------------------


class ImageRepository(Protocol):
    def add_pending(self, record: ImageRecord, *, seen: int, remove: Sequence[str]) -> None:
        """Record a pending image and add it to its product, dropping the images `remove`, in one
        atomic write. Raises ConditionNotMet unless the product exists, is `record.owner`'s and
        still holds `seen` images (so two requests cannot both take the last free place)."""

    def get(self, image_id: str) -> ImageRecord | None: ...

    def finish(self, record: ImageRecord, now: datetime) -> None:
        """Move a pending image to `record.status` (ready or failed) on the record and the product
        at once. Raises ConditionNotMet if the image is no longer pending or its product is gone."""

    def fail_orphan(self, record: ImageRecord, now: datetime) -> None:
        """Mark a pending image failed when its product no longer exists (the record only).
        Raises ConditionNotMet if it is no longer pending."""


class UploadBucket(Protocol):
    def presigned_post(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm: ...

    def open(self, key: str) -> tuple[ObjectInfo, BinaryIO] | None:
        """What the store says of the object, and a stream of its bytes; None if there is none."""


class MediaBucket(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...


class DecodedImage(Protocol):
    """A decoded image, its size as displayed (EXIF orientation applied)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


class Encoded(Protocol):
    @property
    def rendition(self) -> Rendition: ...

    @property
    def data(self) -> bytes: ...

    @property
    def content_type(self) -> str: ...

    @property
    def extension(self) -> str: ...


class ImageProcessor(Protocol):
    """decode -> resize -> encode; each raises ImageRejected for a file that can never be an image.
    What `resize` returns is the processor's own, handed back to `encode`."""

    def decode(self, data: bytes, fmt: str) -> DecodedImage: ...

    def resize(self, decoded: DecodedImage, plan: Sequence[Rendition]) -> object: ...

    def encode(self, decoded: DecodedImage, resized: object) -> Sequence[Encoded]: ...


class Steps(Protocol):
    """Where processing's time goes: a span per step, and what the trace is about (the tracer)."""

    def subsegment(self, name: str) -> AbstractContextManager[object]: ...

    def annotate(self, **values: str | int | bool | None) -> None: ...


# -- the service -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadTicket:
    image_id: str
    upload: UploadForm


@dataclass(frozen=True)
class Processed:
    """What became of one upload event: `outcome` is ready, failed, duplicate or ignored."""

    outcome: str
    image_id: str | None = None
    reason: str | None = None


class ImageService:
    def __init__(self, images: ImageRepository, products: ProductRepository, uploads: UploadBucket,
                 media: MediaBucket, processor: ImageProcessor, *, tracer: Steps, clock: Clock,
                 new_id: IdFactory) -> None:
        self._images = images
        self._products = products
        self._uploads = uploads
        self._media = media
        self._processor = processor
        self._tracer = tracer
        self._clock = clock
        self._new_id = new_id

    # -- the API ---------------------------------------------------------------------------------

    def request_upload(self, caller: Caller, product_id: str, *, content_type: str, size_bytes: int) -> UploadTicket:
        """Record a pending image on the caller's product and presign its upload.

        Raises NotFound, Forbidden, TooManyImages, or DependencyUnavailable when the product
        keeps changing under concurrent requests.
        """
        if not is_id(product_id):
            raise NotFound(f"product {product_id} does not exist")
        record = ImageRecord(id=self._new_id(), product_id=product_id, owner=caller.sub,
                             content_type=content_type, size_bytes=size_bytes, created_at=self._clock())
        for _ in range(_ADD_ATTEMPTS):
            product = self._products.get(product_id)
            if product is None:
                raise NotFound(f"product {product_id} does not exist")
            if product.owner != caller.sub:
                raise Forbidden("only the product's owner may add images to it")
            try:
                self._images.add_pending(record, seen=len(product.images),
                                         remove=_making_room(product.images))
                break
            except ConditionNotMet:
                continue  # the product changed between the read and the write: look again
        else:
            raise DependencyUnavailable("the product is being changed by other requests; try again")
        form = self._uploads.presigned_post(record.upload_key, content_type=content_type,
                                            max_bytes=size_bytes, expires_in=UPLOAD_EXPIRES_IN)
        return UploadTicket(record.id, form)

    # -- the queue -------------------------------------------------------------------------------

    def process_upload(self, key: str) -> Processed:
        """Turn the upload stored under `key` into renditions and finish its image record.

        Raises only for what a retry can fix (the record is then retried, later parked in the DLQ).
        """
        parsed = parse_upload_key(key)
        if parsed is None:
            logger.warning("upload ignored: not a key this app hands out", extra={"key": key[:300]})
            return Processed("ignored", reason="unknown key")
        record = self._images.get(parsed.image_id)
        if record is None or record.upload_key != key:
            logger.warning("upload ignored: no image record for its key", extra={"key": key})
            return Processed("ignored", parsed.image_id, "unknown key")
        self._tracer.annotate(image_id=record.id, product_id=record.product_id, owner=record.owner)
        if record.status != PENDING:
            return Processed("duplicate", record.id)
        try:
            finished, written = self._render(record)
        except ImageRejected as rejected:
            finished, written = dataclasses.replace(record, status=FAILED, error=rejected.reason), []
        return self._finish(finished, written)

    def _render(self, record: ImageRecord) -> tuple[ImageRecord, list[str]]:
        tracer = self._tracer
        with tracer.subsegment("download"):
            opened = self._uploads.open(record.upload_key)
            if opened is None:
                raise ImageRejected("the uploaded file is gone")
            stored, stream = opened
            try:
                check_object(size_bytes=stored.size, content_type=stored.content_type,
                             declared_size=record.size_bytes, declared_type=record.content_type)
                data = stream.read(stored.size + 1)
            finally:
                stream.close()  # unread bytes must not hold the pooled connection
        if len(data) != stored.size:
            raise DependencyUnavailable(f"read {len(data)} of {stored.size} bytes of the upload")
        inspect_file(data, record.content_type)
        with tracer.subsegment("decode"):
            decoded = self._processor.decode(data, ACCEPTED_TYPES[record.content_type])
        del data
        width, height = decoded.width, decoded.height
        plan = rendition_plan(width, height)
        with tracer.subsegment("resize"):
            resized = self._processor.resize(decoded, plan)
        with tracer.subsegment("encode"):
            encoded = self._processor.encode(decoded, resized)
        del decoded, resized
        renditions: dict[str, str] = {}
        objects: dict[str, Encoded] = {}
        for item in encoded:
            key = rendition_key(record.product_id, record.id, item.rendition, item.extension)
            renditions[item.rendition.name] = key
            objects[key] = item
        with tracer.subsegment("upload"):
            for key, item in objects.items():
                self._media.put(key, item.data, item.content_type)
        ready = dataclasses.replace(record, status=READY, width=width, height=height, renditions=renditions)
        return ready, list(objects)

    def _finish(self, finished: ImageRecord, written: list[str]) -> Processed:
        now = self._clock()
        try:
            self._images.finish(finished, now)
        except ConditionNotMet:
            current = self._images.get(finished.id)
            if current is None or current.status != PENDING:
                return Processed("duplicate", finished.id)  # a twin delivery finished it first
            if self._products.get(finished.product_id) is not None:
                raise DependencyUnavailable(f"image {finished.id} is pending but its product's copy is not")
            # The product was deleted while the image was processed: its renditions are orphans.
            self._media.delete(written)
            finished = dataclasses.replace(current, status=FAILED, error=PRODUCT_GONE)
            try:
                self._images.fail_orphan(finished, now)
            except ConditionNotMet:
                return Processed("duplicate", finished.id)
        logger.info("image processed", extra={
            "image_id": finished.id, "product_id": finished.product_id, "status": finished.status,
            "error": finished.error, "width": finished.width, "height": finished.height})
        return Processed(finished.status, finished.id, finished.error)


def _making_room(images: Sequence[ProductImage]) -> list[str]:
    """Failed images to drop so one more fits (oldest first); raises TooManyImages if none can go."""
    excess = len(images) - MAX_IMAGES_PER_PRODUCT + 1
    if excess <= 0:
        return []
    failed = sorted((i for i in images if i.status == FAILED), key=lambda i: (i.created_at, i.id))
    if len(failed) < excess:
        raise TooManyImages(f"a product holds at most {MAX_IMAGES_PER_PRODUCT} images")
    return [i.id for i in failed[:excess]]
