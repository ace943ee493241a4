"""The ports more than one service uses; each service's own ports live beside it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from collections.abc import Sequence
from typing import Protocol

from chalicelib.domain.idempotency import IdempotencyRecord

__all__ = ["Clock", "IdFactory", "TraceHeader", "IdempotencyStore", "Mailer", "Directory"]

Clock = Callable[[], datetime]
IdFactory = Callable[[], str]
# The header that lets a message's consumer join the sender's trace (None: not traced).
TraceHeader = Callable[[], "str | None"]


class IdempotencyStore(Protocol):
    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        """The live record under `key`, or None (also when it has expired)."""


class Mailer(Protocol):
    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        """Send a plain-text e-mail; raises DependencyUnavailable when it could not be sent now
        (retry), MailRejected when SES refused it (a bad address: do not retry)."""


class Directory(Protocol):
    def email_of(self, user_id: str) -> str | None:
        """The user's e-mail address (the user pool's `email` attribute of the user whose `sub`
        is `user_id`), None when the user or the attribute does not exist."""
