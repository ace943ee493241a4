"""What the import and cleanup services need from the outside; adapters implement it, tests fake it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Iterator, Protocol, Sequence

from chalicelib.domain.imports import Chunk, ImportJob, RowError
from chalicelib.domain.products import Product

__all__ = ["ImportJobRepository", "ImportFiles", "ImportWriter", "ImportTopics", "FileInfo"]


class FileInfo(Protocol):
    size: int
    etag: str


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
                            status: str, now: datetime) -> ImportJob | None:
        """Count chunk `index`, the job's only missing one, and end the job with `status` (marking
        it announced) in the same write; None if it is not the only one missing any more."""

    def finish(self, job_id: str, status: str, now: datetime) -> bool:
        """running -> `status` if every chunk is done, marking the job announced; True only for
        the caller that did it."""

    def mark_notified(self, job_id: str, now: datetime) -> None: ...

    def expired(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(job id, owner) of jobs past retention, oldest first."""

    def delete(self, job_id: str) -> int:
        """Delete the job with its error items; how many items went."""


class ImportFiles(Protocol):
    def presign_upload(self, key: str, *, max_bytes: int, expires_in: int) -> dict[str, Any]: ...

    def stat(self, key: str) -> FileInfo | None: ...

    def read(self, key: str, etag: str, start: int | None = None,
             end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) of the object if it still has `etag`; raises FileUnavailable."""

    def delete(self, key: str) -> None: ...


class ImportWriter(Protocol):
    def existing(self, owner: str, first_id: str, last_id: str) -> set[str]:
        """Ids of the owner's existing products from first_id to last_id (inclusive)."""

    def write(self, products: Iterable[Product], errors: Iterable[tuple[str, RowError]], *,
              expires_at: datetime) -> int:
        """Put the products and the (job id, error) items; the number of write calls."""


class ImportTopics(Protocol):
    def publish_chunks(self, chunks: Sequence[Chunk], trace_header: str | None) -> int: ...

    def publish_completed(self, event: dict[str, Any]) -> None: ...
