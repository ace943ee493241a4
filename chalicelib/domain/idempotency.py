"""Idempotency keys: the same request replayed gives the first answer, another request with the key is a conflict."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import IdempotencyConflict, InvalidInput

__all__ = ["IdempotencyRecord", "StoredResponse", "validate_key", "fingerprint", "record_key", "replay", "HEADER",
           "KEY_REGEX"]

HEADER = "Idempotency-Key"
KEY_REGEX = r"[\x21-\x7e]{1,255}"  # visible ASCII, as Stripe-style keys are (unanchored)
_KEY = re.compile(rf"^{KEY_REGEX}\Z")


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str           # scoped: caller, operation and the client's key
    fingerprint: str   # of the request body, so another body under the same key is caught
    response: StoredResponse
    expires_at: datetime


def validate_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY.match(value):
        raise InvalidInput(HEADER, "must be 1 to 255 visible ASCII characters")
    return value


def record_key(caller: str, operation: str, key: str) -> str:
    return f"{operation}#{caller}#{key}"


def fingerprint(body: Any) -> str:
    """Of the parsed body, so key order and whitespace do not make two requests differ."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(record: IdempotencyRecord, request_fingerprint: str) -> StoredResponse:
    """The first response again; raises IdempotencyConflict if this request is not the first one."""
    if record.fingerprint != request_fingerprint:
        raise IdempotencyConflict(
            f"{HEADER} was already used with a different request body; use a new key")
    return record.response
