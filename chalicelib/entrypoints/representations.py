"""The API's JSON shapes of domain objects."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from chalicelib.domain.orders import Order
from chalicelib.domain.products import Product

__all__ = ["product_json", "order_json", "iso"]


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id, "owner": product.owner, "name": product.name,
        "description": product.description, "price_cents": product.price_cents,
        "currency": product.currency, "stock": product.stock, "version": product.version,
        "created_at": iso(product.created_at), "updated_at": iso(product.updated_at),
        "images": list(product.images),
    }


def order_json(order: Order) -> dict[str, Any]:
    body = {"order_id": order.id, "product_id": order.product_id, "quantity": order.quantity,
            "status": order.status, "created_at": iso(order.created_at), "updated_at": iso(order.updated_at)}
    if order.reason:
        body["reason"] = order.reason
    return body
