"""What the app knows of stored files (S3 objects): plain values, no AWS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["UploadForm", "ObjectInfo", "StoredObject"]


@dataclass(frozen=True)
class UploadForm:
    """A presigned POST: the form's action URL and the fields to send before the file."""

    url: str
    fields: Mapping[str, str]

    def as_dict(self) -> dict[str, object]:
        return {"url": self.url, "fields": dict(self.fields)}


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says of one object (never what the uploader declared)."""

    size: int
    etag: str
    content_type: str | None = None


@dataclass(frozen=True)
class StoredObject:
    """One entry of a listing."""

    key: str
    last_modified: datetime
