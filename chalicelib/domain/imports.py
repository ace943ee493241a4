"""Bulk CSV imports: jobs, the file's records, chunk plans, row validation and product ids.

Pure rules, no AWS: the dispatcher and the workers read the same bytes through `records`, so a
chunk's byte range and row numbers mean the same thing on both sides.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first product row 2. A
record is one CSV row, which may span lines inside a quoted field; blank records are skipped
(they keep their row number, so later rows still match the spreadsheet).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from datetime import datetime
from typing import Any, Iterable, Iterator

from chalicelib.domain.errors import InvalidInput, PoisonMessage
from chalicelib.domain.identity import USER_ID_REGEX
from chalicelib.domain.ids import ID_REGEX, is_id, new_id
from chalicelib.domain.products import iso

__all__ = [
    "HEADER", "MAX_FILE_BYTES", "MAX_ROW_BYTES", "CHUNK_ROWS", "MAX_ERRORS",
    "ImportStatus", "PENDING", "RUNNING", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "FINAL_STATUSES",
    "ImportJob", "RowError", "Record", "Chunk", "ChunkPlan", "BadFile",
    "FileUnavailable", "records", "plan_chunks", "check_header", "parse_row", "product_id_for",
    "upload_key", "parse_upload_key", "final_status", "completed_event",
]

HEADER = ("name", "description", "price_cents", "currency", "stock")
MAX_FILE_BYTES = 50 * 1024 * 1024
# A valid row is at most ~9 KB (200 + 2,000 characters of four UTF-8 bytes each, plus numbers and
# quotes). Longer records are certainly invalid (an unclosed quote swallowing the file, usually):
# they are counted and reported, never held in memory.
MAX_ROW_BYTES = 64 * 1024
CHUNK_ROWS = 500
MAX_ERRORS = 100

class ImportStatus(StrEnum):
    """pending (waiting for its file) -> running (chunks published) -> one of the final three."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"


# Members, not copies: `PENDING is ImportStatus.PENDING`.
PENDING, RUNNING, FAILED = ImportStatus.PENDING, ImportStatus.RUNNING, ImportStatus.FAILED
COMPLETED, COMPLETED_WITH_ERRORS = ImportStatus.COMPLETED, ImportStatus.COMPLETED_WITH_ERRORS
FINAL_STATUSES = frozenset({COMPLETED, COMPLETED_WITH_ERRORS, FAILED})

_KEY = re.compile(rf"^imports/({USER_ID_REGEX})/({ID_REGEX})\.csv\Z")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}\Z")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INT_FIELDS = ("price_cents", "stock")


class BadFile(Exception):
    """The file cannot be imported at all (empty, too large, bad header): the job fails."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


class FileUnavailable(Exception):
    """The uploaded file is gone, or was replaced after the dispatcher planned it."""


@dataclass(frozen=True)
class RowError:
    row: int | None  # None: about the whole file, not one row
    message: str


@dataclass(frozen=True)
class ImportJob:
    job_id: str
    owner: str
    status: ImportStatus
    created_at: datetime
    updated_at: datetime
    rows_total: int = 0
    rows_imported: int = 0
    rows_failed: int = 0
    chunks_total: int = 0
    chunks_done: int = 0
    done_chunks: frozenset[int] = frozenset()
    etag: str | None = None
    dispatched: bool = False
    notified: bool = False
    finished_at: datetime | None = None
    failure: str | None = None  # why a failed job failed (bad header, unreadable file)
    errors: tuple[RowError, ...] = ()
    expires_at: datetime | None = None  # end of retention: cleanup deletes the job after it

    @property
    def key(self) -> str:
        return upload_key(self.owner, self.job_id)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def all_chunks_done(self) -> bool:
        return self.status == RUNNING and self.chunks_done >= self.chunks_total


def final_status(job: ImportJob) -> ImportStatus:
    """How a job whose chunks are all done ends."""
    return COMPLETED_WITH_ERRORS if job.rows_failed else COMPLETED


def completed_event(job: ImportJob) -> dict[str, Any]:
    """The ImportCompleted event (at least once: consumers dedupe by job_id)."""
    return {
        "type": "ImportCompleted", "job_id": job.job_id, "owner": job.owner, "status": job.status,
        "rows_total": job.rows_total, "rows_imported": job.rows_imported,
        "rows_failed": job.rows_failed,
        "finished_at": iso(job.finished_at) if job.finished_at else None,
    }


def upload_key(owner: str, job_id: str) -> str:
    return f"imports/{owner}/{job_id}.csv"


def parse_upload_key(key: str) -> tuple[str, str] | None:
    """(owner, job_id) of an import's object key, or None for a key the app never hands out."""
    match = _KEY.match(key)
    return (match.group(1), match.group(2)) if match else None


def product_id_for(job_id: str, row: int) -> str:
    """The product id of `row` of job `job_id`: the same on every retry, a valid ULID.

    Time part: the job's, so an import's products sort together. Random part: 48 bits of a hash
    of the job id, then the row number, so a job's products sort in row order and two jobs of the
    same millisecond never share an id.
    """
    ms, digest = _job_id_parts(job_id)
    return new_id(now_ms=ms, randomness=digest + row.to_bytes(4, "big"))


@functools.lru_cache(maxsize=64)
def _job_id_parts(job_id: str) -> tuple[int, bytes]:
    """The time part and hashed part of a job's product ids (computed once per job, not per row)."""
    if not is_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    ms = 0
    for char in job_id[:10]:
        ms = ms * 32 + _CROCKFORD.index(char)
    return ms, hashlib.sha256(job_id.encode()).digest()[:6]


# -- reading the file --------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    row: int
    start: int  # byte offsets in the file, end exclusive
    end: int
    data: bytes | None  # None when longer than the limit (then it was not kept)

    @property
    def blank(self) -> bool:
        return self.data is not None and not self.data.strip(b"\r\n")


def records(blocks: Iterable[bytes], *, offset: int = 0, first_row: int = 1,
            max_bytes: int = MAX_ROW_BYTES) -> Iterator[Record]:
    """Split a stream of bytes into CSV records without decoding it.

    A newline ends a record unless it is inside quotes; RFC 4180 escapes a quote by doubling it,
    so the parity of the quotes seen tells. In UTF-8 neither byte occurs inside a multi-byte
    character, so this is safe before decoding. Memory: one record (at most `max_bytes`).
    """
    parts: list[bytes] = []
    size = 0
    start = offset
    position = offset
    quoted = False
    row = first_row
    for block in blocks:
        at = 0
        length = len(block)
        while at < length:
            newline = block.find(b"\n", at)
            stop = length if newline < 0 else newline + 1
            piece = block[at:stop]
            if piece.count(b'"') & 1:
                quoted = not quoted
            size += stop - at
            if size <= max_bytes:
                parts.append(piece)
            position += stop - at
            at = stop
            if newline >= 0 and not quoted:
                yield Record(row, start, position, b"".join(parts) if size <= max_bytes else None)
                row += 1
                parts, size, start = [], 0, position
    if size:
        yield Record(row, start, position, b"".join(parts) if size <= max_bytes else None)


@dataclass(frozen=True)
class Chunk:
    """One worker's share of a file: rows first_row.. in bytes [start, end)."""

    job_id: str
    owner: str
    etag: str
    index: int
    start: int
    end: int
    first_row: int
    rows: int

    def to_message(self) -> dict[str, Any]:
        return {"v": 1, "job_id": self.job_id, "owner": self.owner, "etag": self.etag,
                "index": self.index, "start": self.start, "end": self.end,
                "first_row": self.first_row, "rows": self.rows}

    @classmethod
    def from_message(cls, body: Any) -> "Chunk":
        """Raises PoisonMessage for anything `to_message` did not make."""
        try:
            if not isinstance(body, dict) or body.get("v") != 1:
                raise ValueError("not a version 1 chunk message")
            chunk = cls(job_id=str(body["job_id"]), owner=str(body["owner"]), etag=str(body["etag"]),
                        **{k: _natural(body[k], k) for k in ("index", "start", "end", "first_row", "rows")})
        except (KeyError, TypeError, ValueError) as exc:
            raise PoisonMessage(f"not a chunk message: {exc}") from None
        if not is_id(chunk.job_id) or chunk.end <= chunk.start or chunk.rows < 1:
            raise PoisonMessage(f"not a chunk message: {json.dumps(body)[:200]}")
        return chunk


def _natural(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


@dataclass(frozen=True)
class ChunkPlan:
    rows_total: int
    chunks: list[tuple[int, int, int, int]] = field(default_factory=list)  # (start, end, first_row, rows)


def plan_chunks(blocks: Iterable[bytes], *, chunk_rows: int = CHUNK_ROWS) -> ChunkPlan:
    """Check the header and cut the file into chunks of `chunk_rows` non-blank rows.

    A chunk runs from its first row to the next chunk's first row, so blank records between them
    travel with it (and are skipped there too). Raises BadFile for an empty file or a bad header.
    """
    stream = records(blocks)
    header = next(stream, None)
    if header is None:
        raise BadFile("the file is empty; it needs the header " + ",".join(HEADER))
    check_header(header)
    rows_total = 0
    chunks: list[tuple[int, int, int, int]] = []
    current: list[int] | None = None  # [start, first_row, rows]
    end = header.end
    for record in stream:
        end = record.end
        if record.blank:
            continue
        if current is None or current[2] == chunk_rows:
            if current is not None:
                chunks.append((current[0], record.start, current[1], current[2]))
            current = [record.start, record.row, 0]
        current[2] += 1
        rows_total += 1
    if current is not None:
        chunks.append((current[0], end, current[1], current[2]))
    return ChunkPlan(rows_total, chunks)


def check_header(record: Record) -> None:
    expected = ",".join(HEADER)
    if record.data is None:
        raise BadFile(f"the header is longer than {MAX_ROW_BYTES // 1024} KiB; "
                      f"it must be {expected}", row=1)
    try:
        text = record.data.decode("utf-8-sig")
        fields = _csv_fields(text)
    except (UnicodeDecodeError, ValueError):
        raise BadFile(f"the header is not UTF-8 CSV; it must be {expected}", row=1) from None
    if tuple(f.strip() for f in fields) != HEADER:
        got = ",".join(fields)[:200]
        raise BadFile(f"the header must be {expected} (got {got!r})", row=1)


def _csv_fields(text: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text.rstrip("\r\n"), newline=""), strict=True))
    except csv.Error as exc:
        raise ValueError(f"is not valid CSV ({exc})") from None
    if len(rows) != 1:
        raise ValueError("is not valid CSV (a line break outside quotes)")
    return rows[0]


def parse_row(record: Record) -> dict[str, Any] | RowError:
    """The fields of a valid product row (CreateProduct's), or the row's first error."""
    from chalicelib.domain.commands import CreateProduct, parse_command

    if record.data is None:
        return RowError(record.row, f"is longer than {MAX_ROW_BYTES // 1024} KiB "
                                    "(an unclosed quote?)")
    try:
        fields = _csv_fields(record.data.decode("utf-8"))
    except UnicodeDecodeError:
        return RowError(record.row, "is not valid UTF-8")
    except ValueError as exc:
        return RowError(record.row, str(exc))
    if len(fields) != len(HEADER):
        count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
        return RowError(record.row, f"has {count}; expected {len(HEADER)} ({','.join(HEADER)})")
    values: dict[str, Any] = dict(zip(HEADER, fields))
    for name in _INT_FIELDS:
        # The API takes JSON integers; a CSV cell is text, so whole numbers become integers and
        # anything else stays text for the validator to reject with the API's own message.
        if _INTEGER.match(values[name].strip()):
            values[name] = int(values[name])
    try:
        return parse_command(CreateProduct, values).model_dump()
    except InvalidInput as exc:
        return RowError(record.row, f"{exc.field}: {exc.message}")
