"""The API's JSON shapes of domain objects."""

from __future__ import annotations

from typing import Any, Callable

from chalicelib.domain.orders import HistoryEntry, Order
from chalicelib.domain.images import READY, RENDITIONS, ProductImage
from chalicelib.domain.products import Product, iso
from chalicelib.domain.sales import SalesReport

__all__ = ["product_json", "image_json", "order_json", "iso"]


def product_json(product: Product, rendition_url: Callable[[str], str] | None = None) -> dict[str, Any]:
    """`rendition_url` turns a rendition's object key into a URL (a presigned GET, made at read
    time); it is needed once the product has a ready image."""
    return {
        "id": product.id, "owner": product.owner, "name": product.name,
        "description": product.description, "price_cents": product.price_cents,
        "currency": product.currency, "stock": product.stock, "version": product.version,
        "created_at": iso(product.created_at), "updated_at": iso(product.updated_at),
        "images": [image_json(image, rendition_url) for image in product.images],
    }


def image_json(image: ProductImage, rendition_url: Callable[[str], str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": image.id, "status": image.status}
    if image.error is not None:
        body["error"] = image.error
    if image.width is not None and image.height is not None:
        body["width"], body["height"] = image.width, image.height
    renditions: dict[str, str] = {}
    if image.status == READY:
        if rendition_url is None:
            raise ValueError("a ready image needs rendition_url to show its renditions")
        # small, medium, large: a DynamoDB map keeps no order
        renditions = {name: rendition_url(image.renditions[name])
                      for name, _ in RENDITIONS if name in image.renditions}
    body["renditions"] = renditions
    return body


def order_json(order: Order) -> dict[str, Any]:
    payment: dict[str, Any] = {"status": order.payment.status}
    if order.payment.reference is not None:
        payment["reference"] = order.payment.reference
    body: dict[str, Any] = {
        "order_id": order.id, "product_id": order.product_id, "quantity": order.quantity, "status": order.status,
        "amount_cents": order.amount_cents, "currency": order.currency, "payment": payment,
        "history": [_history_json(entry) for entry in order.history],
        "created_at": iso(order.created_at), "updated_at": iso(order.updated_at)}
    if order.reason:
        body["reason"] = order.reason
    return body


def _history_json(entry: HistoryEntry) -> dict[str, Any]:
    body: dict[str, Any] = {"status": entry.status, "at": iso(entry.at)}
    if entry.reason:
        body["reason"] = entry.reason
    return body


def sales_json(report: SalesReport) -> dict[str, Any]:
    return {
        "totals": {"orders": report.orders, "units": report.units, "revenue_cents": report.revenue_cents},
        "products": [{"product_id": p.product_id, "name": p.name, "orders": p.orders, "units": p.units,
                      "revenue_cents": p.revenue_cents} for p in report.products],
        "as_of": None if report.as_of is None else iso(report.as_of),
    }
