"""What the cleanup needs from the outside; adapters implement it, unit tests fake it."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Protocol, Sequence

from chalicelib.domain.cleanup import StoredObject
from chalicelib.domain.images import ImageRecord

__all__ = ["CleanupImages", "ProductLookup", "ObjectStore", "Cursors", "ExpiringRecords", "ExpiredJobs",
           "FileRemover"]


class CleanupImages(Protocol):
    def stale_pending(self, created_before: datetime, limit: int) -> list[ImageRecord]:
        """Images still pending that were requested before `created_before`, oldest first."""

    def get_many(self, image_ids: Iterable[str]) -> dict[str, ImageRecord]: ...

    def ids_of_product(self, product_id: str) -> list[str]: ...

    def fail(self, record: ImageRecord, now: datetime) -> bool:
        """Mark a pending image failed with `record.error` (and on its product, if it still
        exists); False when it was no longer pending."""

    def delete(self, image_ids: Sequence[str]) -> None: ...


class ProductLookup(Protocol):
    def existing(self, product_ids: Iterable[str]) -> set[str]: ...


class ObjectStore(Protocol):
    def list(self, prefix: str, start_after: str | None, limit: int) -> tuple[list[StoredObject], bool]:
        """Up to `limit` objects after `start_after` in key order, and whether more follow."""

    def delete(self, keys: Sequence[str]) -> None: ...


class Cursors(Protocol):
    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str | None) -> None: ...


class ExpiringRecords(Protocol):
    def expired(self, now: datetime, limit: int) -> list[str]:
        """Keys of idempotency records that expired at or before `now`, oldest first."""

    def delete(self, keys: Sequence[str], now: datetime) -> int:
        """Delete those still expired at `now` (a key reused since is kept); how many went."""


class ExpiredJobs(Protocol):
    def expired(self, now: datetime, limit: int) -> list[tuple[str, str]]: ...

    def delete(self, job_id: str) -> int: ...


class FileRemover(Protocol):
    def delete(self, key: str) -> None: ...
