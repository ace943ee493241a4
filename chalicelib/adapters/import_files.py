"""The imports bucket: presigned uploads, and streaming (whole or ranged) reads of a CSV."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.imports import FileUnavailable

__all__ = ["S3ImportFiles", "FileInfo"]

_GONE = {"404", "NoSuchKey", "NotFound"}
_CHANGED = {"412", "PreconditionFailed"}
_BLOCK = 256 * 1024


@dataclass(frozen=True)
class FileInfo:
    size: int
    etag: str


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ImportFiles:
    def __init__(self, s3_client: Any, bucket: str, *, block_size: int = _BLOCK) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._block = block_size

    def presign_upload(self, key: str, *, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A presigned POST for a CSV of 1..max_bytes bytes at `key`: {"url", "fields"}."""
        return self._s3.generate_presigned_post(
            Bucket=self._bucket, Key=key, Fields={"Content-Type": "text/csv"},
            Conditions=[{"Content-Type": "text/csv"}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in)

    def stat(self, key: str) -> FileInfo | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _GONE:
                return None
            raise DependencyUnavailable(f"S3 HeadObject failed: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"S3 HeadObject failed: {exc}") from exc
        return FileInfo(int(head["ContentLength"]), head["ETag"])

    def read(self, key: str, etag: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes [start, end) in blocks, never the whole object at once.

        Raises FileUnavailable when the object is gone or is no longer the one with `etag`.
        """
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key, "IfMatch": etag}
        if start is not None and end is not None:
            params["Range"] = f"bytes={start}-{end - 1}"
        try:
            body = self._s3.get_object(**params)["Body"]
        except ClientError as exc:
            if _code(exc) in _GONE:
                raise FileUnavailable("the uploaded file no longer exists") from None
            if _code(exc) in _CHANGED:
                raise FileUnavailable("the uploaded file was replaced during the import") from None
            raise DependencyUnavailable(f"S3 GetObject failed: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"S3 GetObject failed: {exc}") from exc
        try:
            yield from body.iter_chunks(self._block)
        except BotoCoreError as exc:  # the connection broke mid-stream: a retry reads it again
            raise DependencyUnavailable(f"reading the uploaded file failed: {exc}") from exc
        finally:
            body.close()

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"S3 DeleteObject failed: {exc}") from exc
