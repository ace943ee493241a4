"""Opaque listing cursors.

A cursor is base64url JSON of the listing's scope and the last id served. It carries no secret:
it can only position a listing inside data the caller may read anyway, so what it needs is strict
validation (shape, types, id format, same scope as the request), not signing. Anything else is a
400 naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, Sequence, TypeVar

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.ids import is_id

__all__ = ["Page", "encode_cursor", "decode_cursor"]

T = TypeVar("T")
_VERSION = 1
_MAX_CURSOR = 512


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    last_id: str | None  # set when more items follow


def encode_cursor(scope: str, last_id: str) -> str:
    raw = json.dumps({"v": _VERSION, "scope": scope, "after": last_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> str:
    """The id to continue after; raises InvalidInput("cursor") for anything not made by encode_cursor."""
    bad = InvalidInput("cursor", "is not a cursor this listing returned")
    if not cursor or len(cursor) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if (not isinstance(data, dict) or set(data) != {"v", "scope", "after"} or data["v"] != _VERSION
            or data["scope"] != scope or not isinstance(data["after"], str) or not is_id(data["after"])):
        raise bad
    return data["after"]
