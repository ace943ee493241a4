"""Who is calling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Caller", "TokenVerifier", "USER_ID_REGEX", "is_user_id"]

# A user id as keys and listings carry it: a Cognito sub (a UUID) or a local test id. Unanchored,
# in the dialect Python, pydantic and JSON Schema (ECMA-262) read alike.
USER_ID_REGEX = "[A-Za-z0-9_-]{1,128}"
_USER_ID = re.compile(rf"^{USER_ID_REGEX}\Z")


def is_user_id(value: str) -> bool:
    return bool(_USER_ID.match(value))


@dataclass(frozen=True)
class Caller:
    sub: str         # the token's subject: the stable identity everything is owned by
    username: str


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Caller:
        """The caller a bearer token names; raises Unauthenticated (or DependencyUnavailable
        when the keys to check it cannot be fetched)."""
