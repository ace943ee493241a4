"""Who is calling."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Caller"]


@dataclass(frozen=True)
class Caller:
    sub: str         # the token's subject: the stable identity everything is owned by
    username: str
