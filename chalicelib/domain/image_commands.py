"""The body of POST /products/{id}/images, validated by pydantic (kept off the read path)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from chalicelib.domain.commands import Command, InvalidField, Violation, parse_command
from chalicelib.domain.images import ACCEPTED_TYPES, MAX_UPLOAD_BYTES

__all__ = ["RequestImageUpload", "parse_upload_request"]

ContentType = Literal[  # the keys of ACCEPTED_TYPES (a unit test holds them equal)
    "image/jpeg", "image/png", "image/webp", "image/gif"]


class RequestImageUpload(Command):
    """Body of POST /products/{id}/images: what the client will upload."""

    content_type: ContentType
    size_bytes: Annotated[int, Field(ge=1, le=MAX_UPLOAD_BYTES, strict=True)]


def parse_upload_request(data: Any) -> RequestImageUpload:
    """Raises InvalidField naming the first bad field."""
    try:
        return parse_command(RequestImageUpload, data)
    except InvalidField as exc:
        # Worded here rather than by parse_command: the list of types, and the limit in MiB.
        if exc.field == "content_type" and exc.kind is not Violation.MISSING:
            raise InvalidField("content_type", "must be one of " + ", ".join(ACCEPTED_TYPES), exc.kind) from None
        if exc.field == "size_bytes" and exc.kind is Violation.TOO_LARGE:
            raise InvalidField("size_bytes", f"must be at most {MAX_UPLOAD_BYTES:,} "
                                             f"({MAX_UPLOAD_BYTES // 2**20} MiB)", exc.kind) from None
        raise
