"""Small helpers the app tests share: a user with a token, the reference product, response bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["User", "PRODUCT", "body_of", "create", "products_of"]


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


def products_of(api: Any, owner: str) -> list[dict[str, Any]]:
    """Every product of `owner`, page by page, as GET /products lists them."""
    found, cursor = [], None
    while True:
        page = body_of(api.get(f"/products?owner={owner}&limit=100" + (f"&cursor={cursor}" if cursor else "")))
        found += page["items"]
        if not (cursor := page["next_cursor"]):
            return found
