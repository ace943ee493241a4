"""Small helpers the app tests share: a user with a token, the reference product, response bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["User", "PRODUCT", "body_of", "create"]


@dataclass(frozen=True)
class User:
    username: str
    token: str
    sub: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **extra}


def body_of(response: Any) -> Any:
    return json.loads(response.body) if response.body else None


PRODUCT: dict[str, Any] = {"name": "Mug", "description": "Blue, 350 ml", "price_cents": 1200,
                           "currency": "EUR", "stock": 5}


def create(api: Any, user: User, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return api.post("/products", headers=user.headers(**headers), body=json.dumps(body or PRODUCT))
