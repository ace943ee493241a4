"""The ports more than one service uses; each service's own ports live beside it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from chalicelib.domain.idempotency import IdempotencyRecord

__all__ = ["Clock", "IdFactory", "TraceHeader", "IdempotencyStore"]

Clock = Callable[[], datetime]
IdFactory = Callable[[], str]
# The header that lets a message's consumer join the sender's trace (None: not traced).
TraceHeader = Callable[[], "str | None"]


class IdempotencyStore(Protocol):
    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        """The live record under `key`, or None (also when it has expired)."""
