"""The interfaces the image use cases depend on; adapters implement them, unit tests fake them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Protocol, Sequence

from chalicelib.domain.images import ImageRecord, Rendition

__all__ = ["ImageRepository", "UploadBucket", "MediaBucket", "ImageProcessor", "UploadForm", "StoredUpload",
           "Encoded"]


@dataclass(frozen=True)
class UploadForm:
    """A presigned S3 POST: the form's action URL and the fields to send before the file."""

    url: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class StoredUpload:
    size_bytes: int
    content_type: str | None


class Encoded(Protocol):
    rendition: Rendition
    data: bytes
    content_type: str
    extension: str


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

    def open(self, key: str) -> tuple[StoredUpload, Any] | None:
        """The object's size and type, and a stream of its bytes; None if there is no such object."""


class MediaBucket(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...


class ImageProcessor(Protocol):
    """decode -> resize -> encode; each raises ImageRejected for a file that can never be an image."""

    def decode(self, data: bytes, fmt: str) -> Any:
        """A decoded image with `.width` and `.height` as displayed (EXIF orientation applied)."""

    def resize(self, decoded: Any, plan: Sequence[Rendition]) -> Any: ...

    def encode(self, decoded: Any, resized: Any) -> Sequence[Encoded]: ...
