"""Bulk CSV import: create a job, dispatch its file into chunks (fan-out), import each chunk,
and end the job exactly once when its last chunk lands (fan-in).

Safe to deliver twice, everywhere: a product's id is derived from (job, row), so a retried chunk
rewrites nothing that exists and creates what is missing; a chunk is counted done by one
conditional update; the final status is set once, by the write that counts the last chunk (or,
when the last two chunks race, by one more conditional update).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain.errors import Forbidden, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.ids import is_id
from chalicelib.domain.imports import (
    CHUNK_ROWS, MAX_ERRORS, MAX_FILE_BYTES, PENDING, RUNNING, BadFile, Chunk, FileUnavailable,
    ImportJob, ImportStatus, RowError, completed_event, final_status, parse_row, parse_upload_key, plan_chunks,
    product_id_for, records,
)
from chalicelib.domain.products import Product, new_product
from chalicelib.domain.storage import ObjectInfo, UploadForm
from chalicelib.services.shared import Clock, IdFactory, TraceHeader

__all__ = ["ImportService", "CreatedImport", "ChunkResult", "ImportJobRepository", "ImportFiles", "ImportWriter",
           "ImportTopics"]

_UPLOAD_EXPIRES_S = 3600


# -- ports: what the import needs from the outside ---------------------------------------------


class ImportJobRepository(Protocol):
    def add(self, job: ImportJob, *, expires_at: datetime) -> None: ...

    def get(self, job_id: str) -> ImportJob | None:
        """Strongly consistent; `errors` holds only a failed job's reason (see `errors`)."""

    def errors(self, job_id: str, limit: int) -> list[RowError]:
        """The first `limit` recorded row errors, in row order."""

    def start(self, job_id: str, *, etag: str, rows_total: int, chunks_total: int,
              now: datetime) -> bool:
        """pending -> running (or resume a dispatch of the same file left unfinished)."""

    def mark_dispatched(self, job_id: str, now: datetime) -> None: ...

    def fail(self, job_id: str, message: str, row: int | None, now: datetime) -> bool:
        """Fail a pending or running job; False when it had already ended."""

    def complete_chunk(self, job_id: str, index: int, *, imported: int, failed: int,
                       now: datetime) -> ImportJob | None:
        """Count the chunk done and add its counters atomically, once; None if already counted
        or the job is not running."""

    def complete_last_chunk(self, job_id: str, index: int, *, chunks_total: int, imported: int, failed: int,
                            status: ImportStatus, now: datetime) -> ImportJob | None:
        """Count chunk `index`, the job's only missing one, and end the job with `status` (marking
        it announced) in the same write; None if it is not the only one missing any more."""

    def finish(self, job_id: str, status: ImportStatus, now: datetime) -> bool:
        """running -> `status` if every chunk is done, marking the job announced; True only for
        the caller that did it."""

    def mark_notified(self, job_id: str, now: datetime) -> None: ...

    def expired(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(job id, owner) of jobs past retention, oldest first."""

    def delete(self, job_id: str) -> int:
        """Delete the job with its error items; how many items went."""


class ImportFiles(Protocol):
    def presigned_post(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm: ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def read(self, key: str, etag: str, start: int | None = None,
             end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) of the object if it still has `etag`; raises FileUnavailable."""



class ImportWriter(Protocol):
    def existing(self, owner: str, first_id: str, last_id: str) -> set[str]:
        """Ids of the owner's existing products from first_id to last_id (inclusive)."""

    def write(self, products: Iterable[Product], errors: Iterable[tuple[str, RowError]], *,
              expires_at: datetime) -> int:
        """Put the products and the (job id, error) items; the number of write calls."""


class ImportTopics(Protocol):
    def publish_chunks(self, chunks: Sequence[Chunk], trace_header: str | None) -> int: ...

    def publish_completed(self, event: dict[str, Any]) -> None: ...


# -- the service -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedImport:
    job: ImportJob
    upload: UploadForm


@dataclass(frozen=True)
class ChunkResult:
    outcome: str  # imported | duplicate | ignored | failed
    imported: int = 0
    failed: int = 0
    written: int = 0  # products put by this delivery (a retry skips those that exist)
    write_calls: int = 0


class ImportService:
    def __init__(self, jobs: ImportJobRepository, files: ImportFiles, writer: ImportWriter,
                 topics: ImportTopics, *, clock: Clock, new_id: IdFactory, retention: timedelta,
                 chunk_rows: int = CHUNK_ROWS, trace_header: TraceHeader = lambda: None) -> None:
        """`trace_header` gives the current trace's header, passed to the chunk messages."""
        self._jobs = jobs
        self._files = files
        self._writer = writer
        self._topics = topics
        self._clock = clock
        self._new_id = new_id
        self._retention = retention
        self._chunk_rows = chunk_rows
        self._trace_header = trace_header

    # -- the API -------------------------------------------------------------------------------

    def create(self, caller: Caller) -> CreatedImport:
        """A pending job and the presigned POST that uploads its CSV."""
        now = self._clock()
        job = ImportJob(job_id=self._new_id(), owner=caller.sub, status=PENDING, created_at=now,
                        updated_at=now, expires_at=now + self._retention)
        self._jobs.add(job, expires_at=now + self._retention)
        upload = self._files.presigned_post(job.key, content_type="text/csv", max_bytes=MAX_FILE_BYTES,
                                            expires_in=_UPLOAD_EXPIRES_S)
        return CreatedImport(job, upload)

    def get(self, caller: Caller, job_id: str) -> ImportJob:
        """The caller's job with its first row errors; raises NotFound or Forbidden."""
        job = self._jobs.get(job_id) if is_id(job_id) else None
        if job is None:
            raise NotFound(f"import {job_id} does not exist")
        if job.owner != caller.sub:
            raise Forbidden("only the importer may read an import")
        if job.rows_failed and not job.failure:
            job = dataclasses.replace(job, errors=tuple(self._jobs.errors(job_id, MAX_ERRORS)))
        return job

    # -- fan-out -------------------------------------------------------------------------------

    def dispatch(self, key: str) -> str:
        """Plan the uploaded file at `key` into chunks and publish them; returns what happened.

        Reads the file once, as a stream. A job dispatches once: later uploads to the same key
        are ignored (the workers read the first file by its ETag).
        """
        if parse_upload_key(key) is None:
            return "ignored: not an import upload key"
        job = self._job_uploaded_at(key)
        if job is None:
            return "ignored: no such job"
        if job.status not in (PENDING, RUNNING) or job.dispatched:
            return f"ignored: the job is already {job.status}"
        job_id, owner = job.job_id, job.owner
        info = self._files.stat(key)
        if info is None:
            return self._fail(job_id, RowError(None, "the uploaded file could not be read"))
        if job.status == RUNNING and job.etag != info.etag:
            # The dispatch of the first file stopped before publishing, and the file was replaced
            # since: neither file can be imported consistently.
            return self._fail(job_id, RowError(None, "the file was replaced while the import started; "
                                                     "start a new import"))
        if info.size > MAX_FILE_BYTES:
            return self._fail(job_id, RowError(
                None, f"the file is {info.size:,} bytes; at most {MAX_FILE_BYTES:,} (50 MiB) are accepted"))
        try:
            plan = plan_chunks(self._files.read(key, info.etag), chunk_rows=self._chunk_rows)
        except BadFile as exc:
            return self._fail(job_id, RowError(exc.row, exc.message))
        except FileUnavailable as exc:
            return self._fail(job_id, RowError(None, str(exc)))
        now = self._clock()
        if not self._jobs.start(job_id, etag=info.etag, rows_total=plan.rows_total,
                                chunks_total=len(plan.chunks), now=now):
            return "ignored: dispatched by another delivery"
        chunks = [Chunk(job_id=job_id, owner=owner, etag=info.etag, index=i, start=start, end=end,
                        first_row=first_row, rows=rows)
                  for i, (start, end, first_row, rows) in enumerate(plan.chunks)]
        if chunks:
            self._topics.publish_chunks(chunks, self._trace_header())
        self._jobs.mark_dispatched(job_id, now)
        if not chunks:  # a header and nothing else: done already
            self._finish_if_complete(job_id)
        return f"dispatched {plan.rows_total} rows in {len(chunks)} chunks"

    # -- the workers and fan-in ----------------------------------------------------------------

    def import_chunk(self, chunk: Chunk) -> ChunkResult:
        """Validate and write one chunk's rows, count it done once, and end the job if it was
        the last. Raises DependencyUnavailable (retry) when AWS does not answer."""
        job = self._jobs.get(chunk.job_id)
        if job is None or job.owner != chunk.owner or job.etag != chunk.etag:
            return ChunkResult("ignored")
        if job.status != RUNNING:
            self._announce(job)  # a previous delivery may have ended the job and died before this
            return ChunkResult("ignored")
        if chunk.index in job.done_chunks:
            self._finish_if_complete(job.job_id)
            return ChunkResult("duplicate")
        now = self._clock()
        products: list[Product] = []
        errors: list[RowError] = []
        try:
            for record in records(self._files.read(job.key, chunk.etag, chunk.start, chunk.end),
                                  offset=chunk.start, first_row=chunk.first_row):
                if record.blank:
                    continue
                row = parse_row(record)
                if isinstance(row, RowError):
                    errors.append(row)
                else:
                    products.append(new_product(row, product_id=product_id_for(job.job_id, record.row),
                                                owner=job.owner, now=now))
        except FileUnavailable as exc:
            self._fail(job.job_id, RowError(None, str(exc)))
            return ChunkResult("failed")
        # Only what is missing is written: a product that exists was made by an earlier delivery
        # of this chunk, and its owner may have changed it since.
        existing = (self._writer.existing(job.owner, products[0].id, products[-1].id)
                    if products else set())
        missing = [p for p in products if p.id not in existing]
        expires_at = job.expires_at or now + self._retention
        calls = self._writer.write(missing, [(job.job_id, e) for e in errors[:MAX_ERRORS]],
                                   expires_at=expires_at)
        counted = self._count(job.job_id, chunk.index, imported=len(products), failed=len(errors))
        if counted is None:  # a twin delivery counted it first
            self._finish_if_complete(job.job_id)
            return ChunkResult("duplicate", len(products), len(errors), len(missing), calls)
        self._finish_if_complete(counted.job_id, counted)
        return ChunkResult("imported", len(products), len(errors), len(missing), calls)

    def _count(self, job_id: str, index: int, *, imported: int, failed: int) -> ImportJob | None:
        """Count the chunk done, once. The last chunk also ends the job in the same write; whether
        it is the last is read just before, so only chunks finishing within that moment race, and
        then the one counted last ends the job with one more write (_finish_if_complete)."""
        now = self._clock()
        latest = self._jobs.get(job_id)
        if (latest is not None and latest.status == RUNNING and index not in latest.done_chunks
                and latest.chunks_done == latest.chunks_total - 1):
            ended = dataclasses.replace(
                latest, chunks_done=latest.chunks_total, done_chunks=latest.done_chunks | {index},
                rows_imported=latest.rows_imported + imported, rows_failed=latest.rows_failed + failed,
                finished_at=now, notified=True)
            ended = dataclasses.replace(ended, status=final_status(ended))
            # Announced before the write that records the announcement, as in _finish_if_complete.
            self._topics.publish_completed(completed_event(ended))
            last = self._jobs.complete_last_chunk(job_id, index, chunks_total=latest.chunks_total,
                                                  imported=imported, failed=failed, status=ended.status, now=now)
            if last is not None:
                return last
        return self._jobs.complete_chunk(job_id, index, imported=imported, failed=failed, now=now)

    def _job_uploaded_at(self, key: str) -> ImportJob | None:
        """The job whose file `key` is (its owner's), or None."""
        parsed = parse_upload_key(key)
        if parsed is None:
            return None
        owner, job_id = parsed
        job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    def abandon_upload(self, key: str) -> str:
        """An upload whose dispatch failed every delivery (it reached the dispatcher's dead-letter
        queue): its job fails, instead of staying pending (or running, unpublished) for ever."""
        job = self._job_uploaded_at(key)
        if job is None:
            return "ignored: no such job"
        if job.dispatched or job.status not in (PENDING, RUNNING):
            self._announce(job)
            return f"ignored: the job was dispatched, or is already {job.status}"
        return self._fail(job.job_id, RowError(None, "the uploaded file could not be read after repeated "
                                                     "attempts; start a new import"))

    def abandon_chunk(self, chunk: Chunk) -> str:
        """A chunk that failed every delivery (it reached the workers' dead-letter queue): its job
        fails, saying which rows were not imported, instead of running for ever."""
        job = self._jobs.get(chunk.job_id)
        if job is None or job.owner != chunk.owner or job.etag != chunk.etag:
            return "ignored: not a chunk of this job"
        if job.status != RUNNING or chunk.index in job.done_chunks:
            self._announce(job)
            return "ignored: the chunk was imported, or the job has ended"
        last = chunk.first_row + chunk.rows - 1
        return self._fail(job.job_id, RowError(chunk.first_row, (
            f"rows {chunk.first_row} to {last} could not be imported after repeated attempts; the rows "
            f"of the other chunks were imported")))

    def _finish_if_complete(self, job_id: str, job: ImportJob | None = None) -> None:
        job = job or self._jobs.get(job_id)
        if job is None:
            return
        if not job.all_chunks_done:
            self._announce(job)
            return
        now = self._clock()
        ended = dataclasses.replace(job, status=final_status(job), finished_at=now)
        # Announce first, then end the job with the write that also records the announcement: a
        # job showing a final status has always been announced, and a crash in between only
        # announces twice (the event is at least once; consumers dedupe by job_id).
        self._topics.publish_completed(completed_event(ended))
        self._jobs.finish(job_id, ended.status, now)

    def _fail(self, job_id: str, error: RowError) -> str:
        if self._jobs.fail(job_id, error.message, error.row, self._clock()):
            job = self._jobs.get(job_id)
            if job is not None:
                self._announce(job)
        return f"failed: {error.message}"

    def _announce(self, job: ImportJob) -> None:
        """Publish the completed event of an ended job not yet announced (at least once)."""
        if job.is_final and not job.notified:
            self._topics.publish_completed(completed_event(job))
            self._jobs.mark_notified(job.job_id, self._clock())
