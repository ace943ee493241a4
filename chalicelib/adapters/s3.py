"""S3: one adapter for every bucket the app uses (uploads, media, imports).

Each service sees a bucket through its own narrow port (images: UploadBucket, MediaBucket;
imports: ImportFiles; cleanup: ObjectStore); this class is all of them. It takes a zero-argument
function giving the container's one S3 client, so the client is made once per container and only
by code that needs it (a GET of a product without ready images never builds it). Presigning is
local (an HMAC over the request): no call to S3. The URLs point wherever boto3 points, so locally
(AWS_ENDPOINT_URL) they open against the local stack.

Errors: a missing object is None (or FileUnavailable for a read that must find it), an object
replaced since it was planned is FileUnavailable, and every other failure of S3 or the network is
DependencyUnavailable naming the operation: the caller's record is retried, or the API answers 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.imports import FileUnavailable
from chalicelib.domain.storage import ObjectInfo, StoredObject, UploadForm

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Bucket", "RENDITION_CACHE_CONTROL"]

A = TypeVar("A")

# A rendition's key names its image and size, and its bytes never change.
RENDITION_CACHE_CONTROL = "public, max-age=31536000, immutable"
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_CHANGED = frozenset({"412", "PreconditionFailed"})
_DELETE_BATCH = 1000  # DeleteObjects' limit
_BLOCK = 256 * 1024


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(operation: str, exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"S3 {operation} failed: {exc}")


class S3Bucket:
    def __init__(self, client: Callable[[], S3Client], bucket: str, *, url_expires_in: int = 3600,
                 cache_control: str | None = None, block_size: int = _BLOCK) -> None:
        """`url_expires_in`: how long a presigned GET from `url` stays valid; `cache_control`: the
        Cache-Control of every object `put` writes (RENDITION_CACHE_CONTROL for the media bucket)."""
        self._client = client
        self.name = bucket
        self._url_expires_in = url_expires_in
        self._cache_control = cache_control
        self._block = block_size

    # -- presigning (local, no call) -------------------------------------------------------------

    def presigned_post(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm:
        """A form S3 accepts only for `key`, with this Content-Type and 1..max_bytes bytes."""
        post = self._client().generate_presigned_post(
            Bucket=self.name, Key=key, Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in)
        return UploadForm(url=post["url"], fields={str(k): str(v) for k, v in post["fields"].items()})

    def url(self, key: str) -> str:
        """A presigned GET of `key`, valid for `url_expires_in` seconds from now."""
        return self._client().generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=self._url_expires_in)

    # -- reading -----------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo | None:
        head = self._found("HeadObject", lambda: self._client().head_object(Bucket=self.name, Key=key))
        if head is None:
            return None
        return ObjectInfo(int(head["ContentLength"]), head["ETag"], head.get("ContentType"))

    def open(self, key: str) -> tuple[ObjectInfo, BinaryIO] | None:
        """The object's size and type and a stream of its bytes; None if there is no such object."""
        answer = self._found("GetObject", lambda: self._client().get_object(Bucket=self.name, Key=key))
        if answer is None:
            return None
        info = ObjectInfo(int(answer["ContentLength"]), answer["ETag"], answer.get("ContentType"))
        return info, cast(BinaryIO, answer["Body"])

    @staticmethod
    def _found(operation: str, call: Callable[[], A]) -> A | None:
        """`call()`'s answer, or None when the object does not exist."""
        try:
            return call()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise _unavailable(operation, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(operation, exc) from exc

    def read(self, key: str, etag: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes [start, end) in blocks, never the whole object at once.

        Raises FileUnavailable when the object is gone or is no longer the one with `etag`.
        """
        params: dict[str, Any] = {"Bucket": self.name, "Key": key, "IfMatch": etag}
        if start is not None and end is not None:
            params["Range"] = f"bytes={start}-{end - 1}"
        try:
            body = self._client().get_object(**params)["Body"]
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileUnavailable("the uploaded file no longer exists") from None
            if _code(exc) in _CHANGED:
                raise FileUnavailable("the uploaded file was replaced during the import") from None
            raise _unavailable("GetObject", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("GetObject", exc) from exc
        try:
            yield from body.iter_chunks(self._block)
        except BotoCoreError as exc:  # the connection broke mid-stream: a retry reads it again
            raise _unavailable("GetObject (reading the body)", exc) from exc
        finally:
            body.close()

    def list(self, prefix: str, start_after: str | None, limit: int) -> tuple[list[StoredObject], bool]:
        """Up to `limit` objects after `start_after` in key order, and whether more follow."""
        params: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": limit}
        if start_after:
            params["StartAfter"] = start_after
        try:
            page = self._client().list_objects_v2(**params)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("ListObjectsV2", exc) from exc
        objects = [StoredObject(o["Key"], o["LastModified"]) for o in page.get("Contents", [])]
        return objects, bool(page.get("IsTruncated"))

    # -- writing -----------------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        params: dict[str, Any] = {"Bucket": self.name, "Key": key, "Body": data, "ContentType": content_type}
        if self._cache_control is not None:
            params["CacheControl"] = self._cache_control
        try:
            self._client().put_object(**params)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("PutObject", exc) from exc

    def delete(self, keys: Sequence[str]) -> None:
        """Delete `keys` (absent ones too), 1,000 to a call; raises DependencyUnavailable if S3
        kept any (DeleteObjects answers 200 and lists them under Errors)."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]
            try:
                answer = self._client().delete_objects(
                    Bucket=self.name, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise _unavailable("DeleteObjects", exc) from exc
            if answer.get("Errors"):
                raise DependencyUnavailable(f"S3 kept objects: {answer['Errors'][:3]}")
