"""S3 for images: presigned uploads into the uploads bucket, renditions in the media bucket.

Both adapters take a zero-argument function giving the container's one S3 client, so the client
is made once per container and only by code that needs it: a GET of a product without ready
images never builds it. Presigning is local (an HMAC over the request): no call to S3. The URLs
point wherever boto3 points, so locally (AWS_ENDPOINT_URL) they open against the local stack.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.services.image_ports import StoredUpload, UploadForm

__all__ = ["S3UploadBucket", "S3MediaBucket", "RENDITION_CACHE_CONTROL"]

ClientFactory = Callable[[], Any]
# A rendition's key names its image and size, and its bytes never change.
RENDITION_CACHE_CONTROL = "public, max-age=31536000, immutable"
_RETRYABLE = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                        "ThrottlingException", "RequestTimeTooSkewed"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_DELETE_BATCH = 1000  # DeleteObjects' limit


def _unavailable(exc: Exception) -> Exception:
    """The project's error for a failure a retry can fix, else the exception itself."""
    if isinstance(exc, ClientError):
        if exc.response.get("Error", {}).get("Code") in _RETRYABLE:
            return DependencyUnavailable(f"S3: {exc}")
        return exc
    if isinstance(exc, (BotoConnectionError, BotoCoreError)):
        return DependencyUnavailable(f"S3: {exc}")
    return exc


class S3UploadBucket:
    def __init__(self, client: ClientFactory, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def presigned_post(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm:
        """A form S3 accepts only for `key`, with this Content-Type and 1..max_bytes bytes."""
        post = self._client().generate_presigned_post(
            Bucket=self._bucket, Key=key, Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in)
        return UploadForm(url=post["url"], fields=dict(post["fields"]))

    def open(self, key: str) -> tuple[StoredUpload, Any] | None:
        try:
            response = self._client().get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        stored = StoredUpload(size_bytes=int(response["ContentLength"]), content_type=response.get("ContentType"))
        return stored, response["Body"]


class S3MediaBucket:
    def __init__(self, client: ClientFactory, bucket: str, *, url_expires_in: int = 3600) -> None:
        self._client = client
        self._bucket = bucket
        self._url_expires_in = url_expires_in

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client().put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type,
                                      CacheControl=RENDITION_CACHE_CONTROL)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]
            try:
                self._client().delete_objects(
                    Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise _unavailable(exc) from exc

    def url(self, key: str) -> str:
        """A presigned GET of a rendition, valid for `url_expires_in` seconds from now."""
        return self._client().generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=self._url_expires_in)
