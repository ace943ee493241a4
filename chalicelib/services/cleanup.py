"""The hourly cleanup: what is abandoned or expired goes, a bounded amount per run.

Tasks, in order, each stopping at the run's time budget or its work cap (the next run goes on):

1. pending_images: images still pending 24 h after their upload was requested are marked failed
   and their upload deleted; those whose product is gone are deleted outright.
2. uploads, media: the buckets are listed from where the last run stopped (a saved cursor),
   and objects older than an hour that no image record points to go, as do those of deleted
   products, whose image records go with them.
3. idempotency_records: records past their expiry (DynamoDB's TTL deletes lazily, moto never).
4. import_jobs: jobs past their retention, with their row errors and their uploaded CSV.

Safe to run twice at once: every change is conditional or idempotent (a failed image is failed
only while pending, a record is deleted only while still expired, deleting twice is harmless).
Objects come from listings, never from a Scan; records from indexes (pending-index,
product-index, expiry-index).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from chalicelib.domain.cleanup import (
    ORPHAN_AGE, PENDING_TIMEOUT, STALE_IMAGE_ERROR, Budget, Limits, Report, media_is_orphan,
    parse_media_key, upload_is_orphan,
)
from chalicelib.domain.images import FAILED, ImageRecord
from chalicelib.domain.images import parse_upload_key as parse_image_upload_key
from chalicelib.domain.imports import upload_key as import_key
from chalicelib.domain.storage import StoredObject
from chalicelib.logs import logger

__all__ = ["CleanupService", "CleanupImages", "ProductLookup", "ObjectStore", "Cursors", "ExpiringRecords",
           "ExpiredJobs"]

_PAGE = 100
_LIST_PAGE = 1000


# -- ports: what the cleanup needs from the outside --------------------------------------------


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

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` (absent ones too)."""


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


# -- the service -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Sweep:
    name: str
    store: ObjectStore
    prefix: str
    ids: Callable[[str], tuple[str, str] | None]  # key -> (product id, image id)
    is_orphan: Callable[[str, ImageRecord | None, bool], bool]
    counter: str


class CleanupService:
    def __init__(self, *, images: CleanupImages, products: ProductLookup, uploads: ObjectStore,
                 media: ObjectStore, cursors: Cursors, idempotency: ExpiringRecords, jobs: ExpiredJobs,
                 import_files: ObjectStore, limits: Limits = Limits()) -> None:
        self._images = images
        self._products = products
        self._uploads = uploads
        self._cursors = cursors
        self._idempotency = idempotency
        self._jobs = jobs
        self._import_files = import_files
        self._limits = limits
        self._sweeps = (
            _Sweep("uploads", uploads, "uploads/", _upload_ids, upload_is_orphan, "upload_objects_deleted"),
            _Sweep("media", media, "products/", _media_ids, media_is_orphan, "media_objects_deleted"),
        )

    def run(self, now: datetime, remaining_ms: Callable[[], int]) -> Report:
        """One bounded run as if at `now`; `remaining_ms` is the Lambda context's countdown."""
        budget = Budget(remaining_ms, self._limits.reserve_ms)
        report = Report(now)
        tasks: list[tuple[str, Callable[[datetime, Budget, Report], None]]] = [
            ("pending_images", self._pending_images),
            *((s.name, lambda n, b, r, s=s: self._sweep(s, n, b, r)) for s in self._sweeps),
            ("idempotency_records", self._idempotency_records),
            ("import_jobs", self._import_jobs),
        ]
        for name, task in tasks:
            if not budget.left():
                report.stopped[name] = "time"
                continue
            try:
                task(now, budget, report)
            except Exception:  # noqa: BLE001 - whatever it was, the other tasks still run
                # One failing dependency (a bucket, a table, throttling past the SDK's retries)
                # must not stop the other tasks, whose retention must still hold; the next run
                # takes this one up again where its cursor is. The report says it is incomplete.
                logger.exception("cleanup task failed", extra={"task": name})
                report.stopped[name] = "error"
        return report

    # -- images --------------------------------------------------------------------------------

    def _pending_images(self, now: datetime, budget: Budget, report: Report) -> None:
        done = 0
        while True:
            if (stop := self._limit(done, budget)) is not None:
                report.stopped["pending_images"] = stop
                return
            ask = min(_PAGE, self._limits.max_items - done)
            stale = self._images.stale_pending(now - PENDING_TIMEOUT, ask)
            if not stale:
                return
            live = self._products.existing({r.product_id for r in stale})
            gone = [r.id for r in stale if r.product_id not in live]
            # The uploads first: a failed image is never listed here again, and the uploads sweep
            # keeps what a record names, so a run dying in between would leave them for ever.
            self._uploads.delete([r.upload_key for r in stale])
            for record in stale:
                if record.product_id in live and self._images.fail(
                        dataclasses.replace(record, status=FAILED, error=STALE_IMAGE_ERROR), now):
                    report.add(images_failed=1)
            if gone:
                self._images.delete(gone)
                report.add(image_records_deleted=len(gone))
            done += len(stale)
            if len(stale) < ask:
                return

    def _sweep(self, sweep: _Sweep, now: datetime, budget: Budget, report: Report) -> None:
        cursor = self._cursors.get(sweep.name)
        cutoff = now - ORPHAN_AGE
        listed = removed = 0
        while True:
            if not budget.left():
                report.stopped[sweep.name] = "time"
                break
            if listed >= self._limits.max_listed or removed >= self._limits.max_items:
                report.stopped[sweep.name] = "work cap"
                break
            page, more = sweep.store.list(sweep.prefix, cursor, min(_LIST_PAGE, self._limits.max_listed - listed))
            listed += len(page)
            report.add(objects_listed=len(page))
            old = [o for o in page if o.last_modified < cutoff]
            named = {o.key: sweep.ids(o.key) for o in old}
            records = self._images.get_many({ids[1] for ids in named.values() if ids})
            product_ids = {ids[0] for ids in named.values() if ids} | {r.product_id for r in records.values()}
            live = self._products.existing(product_ids)
            orphans: list[str] = []
            last = cursor
            for obj in page:  # in key order: `last` is where the next page (or run) resumes
                if obj.last_modified < cutoff:
                    if removed + len(orphans) >= self._limits.max_items:
                        more = True
                        break
                    ids = named[obj.key]
                    record = records.get(ids[1]) if ids else None
                    product_id = record.product_id if record else (ids[0] if ids else "")
                    if sweep.is_orphan(obj.key, record, product_id in live):
                        orphans.append(obj.key)
                last = obj.key
            if orphans:
                sweep.store.delete(orphans)
                removed += len(orphans)
                report.add(**{sweep.counter: len(orphans)})
            self._forget_images_of(product_ids - live, report)
            cursor = last if more else None  # None: the pass reached the end, the next starts over
            self._cursors.put(sweep.name, cursor)
            if not more:
                break

    def _forget_images_of(self, deleted_products: set[str], report: Report) -> None:
        """Delete the image records of deleted products; their objects are orphans from then on."""
        for product_id in sorted(deleted_products):
            ids = self._images.ids_of_product(product_id)
            if ids:
                self._images.delete(ids)
                report.add(image_records_deleted=len(ids))

    # -- records past retention ----------------------------------------------------------------

    def _idempotency_records(self, now: datetime, budget: Budget, report: Report) -> None:
        examined = 0
        while True:
            if (stop := self._limit(examined, budget)) is not None:
                report.stopped["idempotency_records"] = stop
                return
            ask = min(_PAGE, self._limits.max_items - examined)
            keys = self._idempotency.expired(now, ask)
            if not keys:
                return
            report.add(idempotency_records_deleted=self._idempotency.delete(keys, now))
            examined += len(keys)
            if len(keys) < ask:
                return

    def _import_jobs(self, now: datetime, budget: Budget, report: Report) -> None:
        done = 0
        while True:
            if (stop := self._limit(done, budget)) is not None:
                report.stopped["import_jobs"] = stop
                return
            ask = min(_PAGE, self._limits.max_items - done)
            expired = self._jobs.expired(now, ask)
            for job_id, owner in expired:
                if not budget.left():
                    report.stopped["import_jobs"] = "time"
                    return
                self._import_files.delete([import_key(owner, job_id)])  # the CSV first: the job is the marker
                report.add(import_files_deleted=1, import_items_deleted=self._jobs.delete(job_id),
                           import_jobs_deleted=1)
            done += len(expired)
            if len(expired) < ask:
                return

    def _limit(self, done: int, budget: Budget) -> str | None:
        if done >= self._limits.max_items:
            return "work cap"
        if not budget.left():
            return "time"
        return None


def _upload_ids(key: str) -> tuple[str, str] | None:
    parsed = parse_image_upload_key(key)
    return (parsed.product_id, parsed.image_id) if parsed else None


def _media_ids(key: str) -> tuple[str, str] | None:
    parsed = parse_media_key(key)
    return (parsed.product_id, parsed.image_id) if parsed else None
