"""In-memory stand-ins for the import ports, keeping the adapters' contracts: conditional job
transitions, a done-chunk set counted once, puts that overwrite by id. The imports bucket (ranged
reads by ETag) is `tests.unit.fakes.InMemoryBucket`."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable
from chalicelib.domain.imports import FAILED, PENDING, RUNNING, Chunk, ImportJob, RowError
from chalicelib.domain.products import Product

__all__ = ["InMemoryImportJobs", "InMemoryImportWriter", "InMemoryImportTopics"]


class InMemoryImportJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, ImportJob] = {}
        self.row_errors: dict[str, dict[int, RowError]] = {}
        self.writes = 0
        # Runs just before complete_chunk applies, so a test can land another worker's update first.
        self.before_complete: Callable[[str, int], None] | None = None

    def add(self, job: ImportJob, *, expires_at: datetime) -> None:
        if job.job_id in self.jobs:
            raise ConditionNotMet(job.job_id)
        self.jobs[job.job_id] = dataclasses.replace(job, expires_at=expires_at)

    def get(self, job_id: str) -> ImportJob | None:
        return self.jobs.get(job_id)

    def errors(self, job_id: str, limit: int) -> list[RowError]:
        found = self.row_errors.get(job_id, {})
        return [found[row] for row in sorted(found)][:limit]

    def _set(self, job_id: str, **changes: Any) -> ImportJob:
        self.writes += 1
        job = dataclasses.replace(self.jobs[job_id], **changes)
        self.jobs[job_id] = job
        return job

    def start(self, job_id: str, *, etag: str, rows_total: int, chunks_total: int, now: datetime) -> bool:
        job = self.jobs.get(job_id)
        resumable = job is not None and job.status == RUNNING and job.etag == etag and not job.dispatched
        if job is None or not (job.status == PENDING or resumable):
            return False
        self._set(job_id, status=RUNNING, etag=etag, rows_total=rows_total, chunks_total=chunks_total,
                  updated_at=now)
        return True

    def mark_dispatched(self, job_id: str, now: datetime) -> None:
        self._set(job_id, dispatched=True)

    def fail(self, job_id: str, message: str, row: int | None, now: datetime) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status not in (PENDING, RUNNING):
            return False
        self._set(job_id, status=FAILED, failure=message, errors=(RowError(row, message),),
                  finished_at=now, updated_at=now)
        return True

    def complete_chunk(self, job_id: str, index: int, *, imported: int, failed: int,
                       now: datetime) -> ImportJob | None:
        if self.before_complete is not None:
            hook, self.before_complete = self.before_complete, None
            hook(job_id, index)
        job = self.jobs.get(job_id)
        if job is None or job.status != RUNNING or index in job.done_chunks:
            return None
        return self._set(job_id, done_chunks=job.done_chunks | {index}, chunks_done=job.chunks_done + 1,
                         rows_imported=job.rows_imported + imported, rows_failed=job.rows_failed + failed,
                         updated_at=now)

    def complete_last_chunk(self, job_id: str, index: int, *, chunks_total: int, imported: int, failed: int,
                            status: str, now: datetime) -> ImportJob | None:
        if self.before_complete is not None:
            hook, self.before_complete = self.before_complete, None
            hook(job_id, index)
        job = self.jobs.get(job_id)
        if (job is None or job.status != RUNNING or index in job.done_chunks
                or job.chunks_done != chunks_total - 1):
            return None
        return self._set(job_id, done_chunks=job.done_chunks | {index}, chunks_done=job.chunks_done + 1,
                         rows_imported=job.rows_imported + imported, rows_failed=job.rows_failed + failed,
                         status=status, finished_at=now, notified=True, updated_at=now)

    def finish(self, job_id: str, status: str, now: datetime) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status != RUNNING or job.chunks_done != job.chunks_total:
            return False
        self._set(job_id, status=status, finished_at=now, notified=True, updated_at=now)
        return True

    def mark_notified(self, job_id: str, now: datetime) -> None:
        self._set(job_id, notified=True)

    def expired(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = sorted((j for j in self.jobs.values() if j.expires_at and j.expires_at <= now),
                     key=lambda j: j.expires_at)
        return [(j.job_id, j.owner) for j in due[:limit]]

    def delete(self, job_id: str) -> int:
        errors = self.row_errors.pop(job_id, {})
        return len(errors) + (1 if self.jobs.pop(job_id, None) else 0)


class InMemoryImportWriter:
    """Products by id (a put overwrites, as BatchWriteItem does) and error items per job.

    `products` is the products table's items (an `InMemoryProductRepository`'s, in fake_clients).
    `fail_after_batches` makes the n+1-th batch of 25 raise, after the first n landed: a worker
    dying mid-chunk.
    """

    def __init__(self, jobs: InMemoryImportJobs, products: dict[str, Product] | None = None) -> None:
        self.products: dict[str, Product] = {} if products is None else products
        self.puts: list[str] = []
        self.jobs = jobs
        self.fail_after_batches: int | None = None

    def existing(self, owner: str, first_id: str, last_id: str) -> set[str]:
        return {i for i, p in self.products.items() if p.owner == owner and first_id <= i <= last_id}

    def write(self, products: Iterable[Product], errors: Iterable[tuple[str, RowError]], *,
              expires_at: datetime) -> int:
        items: list[Any] = list(products) + list(errors)
        calls = 0
        for start in range(0, len(items), 25):
            if self.fail_after_batches is not None and calls == self.fail_after_batches:
                self.fail_after_batches = None
                raise DependencyUnavailable("DynamoDB is throttling")
            calls += 1
            for item in items[start:start + 25]:
                if isinstance(item, Product):
                    self.products[item.id] = item
                    self.puts.append(item.id)
                else:
                    job_id, error = item
                    self.jobs.row_errors.setdefault(job_id, {})[error.row] = error
        return calls


class InMemoryImportTopics:
    """What was published, in order."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.trace_headers: list[str | None] = []
        self.completed: list[dict[str, Any]] = []

    def publish_chunks(self, chunks: Sequence[Chunk], trace_header: str | None) -> int:
        self.chunks.extend(chunks)
        self.trace_headers.append(trace_header)
        return (len(chunks) + 9) // 10

    def publish_completed(self, event: dict[str, Any]) -> None:
        self.completed.append(event)
