"""Domain events: what a committed change to a product or an order means to the rest of the shop.

The tables' streams are the outbox: a `Change` is one stream record (the item before and after
one committed write), and `events_of` turns it into the events it means, past tense
(`OrderConfirmed`, `StockLow`). Nothing else publishes events, so an event exists if and only if
its write committed.

An event's `event_id` is derived from the stream record's id (unique per change, the same on
every delivery of it) and the event's type, so a change delivered twice yields the same events
and consumers can recognise a repeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.orders import OrderStatus

__all__ = [
    "LOW_STOCK_THRESHOLD",
    "Change",
    "DomainEvent",
    "EventSource",
    "EventType",
    "Image",
    "events_of",
    "order_events",
    "product_events",
]

# A product's stock below this is low: its seller is told once, when the stock crosses it.
LOW_STOCK_THRESHOLD = 5

Image = Mapping[str, Any]  # an item as the stream gives it, attribute values as Python values


class EventSource(StrEnum):
    ORDERS = "storefront.orders"
    PRODUCTS = "storefront.products"


class EventType(StrEnum):
    """The bus's `detail-type`s (API.md, Domain events)."""

    PRODUCT_CREATED = "ProductCreated"
    PRODUCT_UPDATED = "ProductUpdated"
    PRODUCT_DELETED = "ProductDeleted"
    STOCK_LOW = "StockLow"
    ORDER_CONFIRMED = "OrderConfirmed"
    ORDER_CANCELLED = "OrderCancelled"
    PAYMENT_FAILED = "PaymentFailed"


@dataclass(frozen=True)
class Change:
    """One committed write of one item: its images before (`old`) and after (`new`).

    `change_id` is the stream record's id; `trace_header` the X-Ray header of the request that
    wrote it, when the item carries one (the write's trace, which its events join)."""

    change_id: str
    at: datetime
    old: Image | None
    new: Image | None
    trace_header: str | None = None


@dataclass(frozen=True)
class DomainEvent:
    source: EventSource
    detail_type: EventType
    detail: Mapping[str, Any]  # JSON-ready; always holds event_id, the entity's id and its owner
    at: datetime
    trace_header: str | None = None

    @property
    def event_id(self) -> str:
        return str(self.detail["event_id"])


def events_of(source: EventSource, change: Change) -> list[DomainEvent]:
    """The events one change of the `source` table means, in the order they happened.

    Raises PoisonMessage for an image the app would never have written.
    """
    return product_events(change) if source is EventSource.PRODUCTS else order_events(change)


# -- products ---------------------------------------------------------------------------------

_PRODUCT_FIELDS = ("name", "description", "price_cents", "currency", "stock")


def product_events(change: Change) -> list[DomainEvent]:
    """ProductCreated / ProductUpdated (with the fields that changed) / ProductDeleted, and
    StockLow when the stock crossed below LOW_STOCK_THRESHOLD in this change."""
    old = _product(change.old) if change.old is not None else None
    new = _product(change.new) if change.new is not None else None
    if old is None and new is None:
        raise PoisonMessage("a change with neither an old nor a new image")
    events: list[DomainEvent] = []
    if new is None:
        assert old is not None
        events.append(_event(change, EventSource.PRODUCTS, EventType.PRODUCT_DELETED, _product_detail(old)))
        return events
    if old is None:
        detail = {**_product_detail(new), "changed": list(_PRODUCT_FIELDS)}
        events.append(_event(change, EventSource.PRODUCTS, EventType.PRODUCT_CREATED, detail))
        return events
    changed = [f for f in _PRODUCT_FIELDS if old[f] != new[f]]
    if changed:
        events.append(_event(change, EventSource.PRODUCTS, EventType.PRODUCT_UPDATED,
                             {**_product_detail(new), "changed": changed}))
    if old["stock"] >= LOW_STOCK_THRESHOLD > new["stock"]:
        events.append(_event(change, EventSource.PRODUCTS, EventType.STOCK_LOW,
                             {**_product_detail(new), "threshold": LOW_STOCK_THRESHOLD}))
    return events


def _product(image: Image) -> dict[str, Any]:
    try:
        product = {"product_id": _text(image, "id"), "owner": _text(image, "owner"), "name": _text(image, "name"),
                   "description": str(image.get("description", "")), "price_cents": _int(image, "price_cents"),
                   "currency": _text(image, "currency"), "stock": _int(image, "stock"),
                   "version": _int(image, "version")}
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"not a product item: {exc}") from exc
    return product


def _product_detail(product: Mapping[str, Any]) -> dict[str, Any]:
    return {k: product[k] for k in ("product_id", "owner", "name", "price_cents", "currency", "stock", "version")}


# -- orders -----------------------------------------------------------------------------------

# The moves that are events, by the status an order moved into.
_ORDER_MOVES = {
    OrderStatus.CONFIRMED: EventType.ORDER_CONFIRMED,
    OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
    OrderStatus.PAYMENT_FAILED: EventType.PAYMENT_FAILED,
}


def order_events(change: Change) -> list[DomainEvent]:
    """OrderConfirmed, OrderCancelled or PaymentFailed when the change moved the order into that
    status; nothing for the other writes (intake, reservation, payment steps, notes)."""
    if change.new is None:
        return []  # orders are not deleted; an intake the API withdrew (never reserved) is no event
    new = _order(change.new)
    old_status = _order(change.old)["status"] if change.old is not None else None
    event_type = _ORDER_MOVES.get(new["status"])
    if event_type is None or old_status == new["status"]:
        return []
    detail = {k: v for k, v in new.items() if k != "history"}
    if event_type is EventType.ORDER_CANCELLED:
        # A cancelled order counts against sales only if it had been confirmed (and was refunded).
        detail["was_confirmed"] = OrderStatus.CONFIRMED in new["history"]
    return [_event(change, EventSource.ORDERS, event_type, detail)]


def _order(image: Image) -> dict[str, Any]:
    try:
        history = image.get("history") or []
        order = {
            "order_id": _text(image, "id"), "owner": _text(image, "buyer"), "buyer": _text(image, "buyer"),
            "product_id": _text(image, "product_id"), "quantity": _int(image, "quantity"),
            "status": OrderStatus(_text(image, "status")),
            "reason": image.get("reason"),
            "seller": image.get("seller"), "product_name": image.get("product_name"),
            "amount_cents": None if image.get("amount_cents") is None else _int(image, "amount_cents"),
            "currency": image.get("currency"),
            "history": [OrderStatus(entry["status"]) for entry in history],
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"not an order item: {exc}") from exc
    return order


# -- shared -----------------------------------------------------------------------------------

def _event(change: Change, source: EventSource, event_type: EventType, detail: dict[str, Any]) -> DomainEvent:
    detail = {"event_id": f"{change.change_id}-{event_type}", **detail, "at": change.at.isoformat()}
    return DomainEvent(source, event_type, detail, change.at, change.trace_header)


def _text(image: Image, key: str) -> str:
    value = image[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is not a non-empty string")
    return value


def _int(image: Image, key: str) -> int:
    value = image[key]
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value != int(value):
        raise ValueError(f"{key} is not an integer")
    return int(value)
