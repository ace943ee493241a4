"""Product images: what an upload may be, where its objects live, and the renditions it gets.

An image is a small state machine, `pending -> ready | failed`, recorded when its upload is
requested. Nothing a user sends becomes part of an object key: keys are built here from ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from datetime import datetime
from typing import Mapping

from chalicelib.domain.errors import StorefrontError
from chalicelib.domain.identity import is_user_id
from chalicelib.domain.ids import is_id

__all__ = [
    "ACCEPTED_TYPES", "MAX_UPLOAD_BYTES", "MAX_PIXELS", "MAX_IMAGES_PER_PRODUCT", "RENDITIONS",
    "ImageStatus", "PENDING", "READY", "FAILED", "ProductImage", "ImageRecord", "UploadKey", "Rendition",
    "ImageRejected", "TooManyImages", "upload_key", "parse_upload_key", "rendition_plan", "rendition_key",
    "describe_size",
]

# Declared content type -> the format name the file's magic bytes must show.
ACCEPTED_TYPES: Mapping[str, str] = {
    "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF",
}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
# A product item holds its images (one read serves GET /products/{id}); DynamoDB items stop at
# 400 KB and an entry is ~300 bytes, so this cap is about usefulness, not the item limit.
MAX_IMAGES_PER_PRODUCT = 20
RENDITIONS: tuple[tuple[str, int], ...] = (("small", 200), ("medium", 800), ("large", 1600))

class ImageStatus(StrEnum):
    """`pending` from the upload request until processing ends it `ready` or `failed`, once."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


PENDING, READY, FAILED = ImageStatus.PENDING, ImageStatus.READY, ImageStatus.FAILED  # members, not copies

_UPLOADS_PREFIX = "uploads"


class ImageRejected(StorefrontError):
    """The uploaded file can never become an image; `reason` is for the person who sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProductImage:
    """An image as the product shows it: renditions map a name to its media object key."""

    id: str
    status: ImageStatus
    created_at: datetime
    error: str | None = None
    width: int | None = None
    height: int | None = None
    renditions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRecord:
    """The record of one upload: what was declared, where it goes, and how it ended."""

    id: str
    product_id: str
    owner: str
    content_type: str
    size_bytes: int
    created_at: datetime
    status: ImageStatus = ImageStatus.PENDING
    error: str | None = None
    width: int | None = None
    height: int | None = None
    renditions: Mapping[str, str] = field(default_factory=dict)

    @property
    def upload_key(self) -> str:
        return upload_key(self.owner, self.product_id, self.id)

    def as_product_image(self) -> ProductImage:
        return ProductImage(id=self.id, status=self.status, created_at=self.created_at, error=self.error,
                            width=self.width, height=self.height, renditions=dict(self.renditions))


@dataclass(frozen=True)
class UploadKey:
    owner: str
    product_id: str
    image_id: str


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int


def upload_key(owner: str, product_id: str, image_id: str) -> str:
    return f"{_UPLOADS_PREFIX}/{owner}/{product_id}/{image_id}"


def parse_upload_key(key: str) -> UploadKey | None:
    """The ids an upload key names, or None for a key this app never hands out."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != _UPLOADS_PREFIX:
        return None
    _, owner, product_id, image_id = parts
    if not (is_user_id(owner) and is_id(product_id) and is_id(image_id)):
        return None
    return UploadKey(owner, product_id, image_id)


def rendition_plan(width: int, height: int) -> list[Rendition]:
    """The renditions of a `width` x `height` image (as displayed): each at most its nominal width,
    never wider than the original, height kept in proportion."""
    plan = []
    for name, nominal in RENDITIONS:
        w = min(nominal, width)
        h = max(1, round(height * w / width))
        plan.append(Rendition(name, w, h))
    return plan


def rendition_key(product_id: str, image_id: str, rendition: Rendition, extension: str) -> str:
    """Named by size, not by name: renditions of a small original share one object."""
    return f"products/{product_id}/images/{image_id}/{rendition.width}x{rendition.height}.{extension}"


def describe_size(size_bytes: int) -> str:
    if size_bytes < 1024 * 1024:
        return f"{size_bytes:,} bytes"
    return f"{size_bytes / (1024 * 1024):.1f} MiB"


class TooManyImages(StorefrontError):
    """The product already holds as many images as it may."""
