"""Who is calling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Caller", "TokenVerifier"]


@dataclass(frozen=True)
class Caller:
    sub: str         # the token's subject: the stable identity everything is owned by
    username: str


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Caller:
        """The caller a bearer token names; raises Unauthenticated (or DependencyUnavailable
        when the keys to check it cannot be fetched)."""
