"""Identifiers: time-ordered, URL-safe, made in one place so tests can control them."""

from __future__ import annotations

import os
import re
import time

__all__ = ["new_id", "is_id", "ID_REGEX", "ID_PATTERN"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULID
# The one spelling of an id: unanchored, so key patterns and the OpenAPI document embed it.
ID_REGEX = "[0-9A-HJKMNP-TV-Z]{26}"
ID_PATTERN = re.compile(rf"^{ID_REGEX}\Z")


def new_id(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = os.urandom(10) if randomness is None else randomness
    value = (ms << 80) | int.from_bytes(rand, "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))
