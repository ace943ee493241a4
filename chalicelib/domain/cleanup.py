"""What the hourly cleanup removes, and how much of it one run may do.

Pure rules: which stored object is an orphan, when an image has waited too long, the limits of
a run and the report it makes. The service applies them; nothing here touches AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from chalicelib.domain.ids import is_id
from chalicelib.domain.images import PENDING, ImageRecord
from chalicelib.domain.images import parse_upload_key as parse_image_upload_key

__all__ = [
    "PENDING_TIMEOUT", "ORPHAN_AGE", "STALE_IMAGE_ERROR", "Limits", "Budget", "Report",
    "MediaKey", "parse_media_key", "upload_is_orphan", "media_is_orphan", "TASKS",
]

# An image still pending this long after its upload was requested will never be processed: the
# upload never came, or its message is parked in the DLQ.
PENDING_TIMEOUT = timedelta(hours=24)
# Objects younger than this are left alone: an upload in flight has no finished record yet, and
# renditions are written before their image is marked ready.
ORPHAN_AGE = timedelta(hours=1)
STALE_IMAGE_ERROR = "the image was not uploaded or processed within 24 hours"

TASKS = ("pending_images", "uploads", "media", "idempotency_records", "import_jobs")


@dataclass(frozen=True)
class Limits:
    """Per run: at most `max_items` removals per task and `max_listed` objects listed per bucket;
    `reserve_ms` of the Lambda's time is kept for the summary and a clean stop."""

    max_items: int = 1000
    max_listed: int = 20_000
    reserve_ms: int = 20_000


class Budget:
    """The run's time, from the Lambda context's countdown."""

    def __init__(self, remaining_ms: Callable[[], int], reserve_ms: int) -> None:
        self._remaining_ms = remaining_ms
        self._reserve_ms = reserve_ms

    def left(self) -> bool:
        return self._remaining_ms() > self._reserve_ms


@dataclass
class Report:
    """What one run did: counts by kind, and the tasks that stopped at a limit (the next run goes on)."""

    now: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((
        "images_failed", "image_records_deleted", "upload_objects_deleted", "media_objects_deleted",
        "objects_listed", "idempotency_records_deleted", "import_jobs_deleted", "import_items_deleted",
        "import_files_deleted"), 0))
    stopped: dict[str, str] = field(default_factory=dict)  # task -> "time" | "work cap" | "error"

    def add(self, **counts: int) -> None:
        for name, value in counts.items():
            self.counts[name] += value

    @property
    def complete(self) -> bool:
        return not self.stopped

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat().replace("+00:00", "Z"), **self.counts,
                "complete": self.complete, "stopped": dict(self.stopped)}


@dataclass(frozen=True)
class MediaKey:
    product_id: str
    image_id: str


def parse_media_key(key: str) -> MediaKey | None:
    """The ids a rendition key names (products/<product>/images/<image>/<w>x<h>.<ext>)."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != "products" or parts[2] != "images":
        return None
    if not (is_id(parts[1]) and is_id(parts[3])):
        return None
    return MediaKey(parts[1], parts[3])


def upload_is_orphan(key: str, record: ImageRecord | None, product_exists: bool) -> bool:
    """An upload is kept while its image record names it and its product exists."""
    parsed = parse_image_upload_key(key)
    if parsed is None or record is None or record.upload_key != key:
        return True
    return not product_exists


def media_is_orphan(key: str, record: ImageRecord | None, product_exists: bool) -> bool:
    """A rendition is kept while its product exists and its image is pending (its renditions are
    being written) or lists it among its renditions."""
    parsed = parse_media_key(key)
    if parsed is None or record is None or record.product_id != parsed.product_id:
        return True
    if not product_exists:
        return True
    return record.status != PENDING and key not in set(record.renditions.values())
