"""Stream records for unit tests: products and orders as a table's stream shows their items, the
changes between two of them, a table whose every write is one change (`StreamedItems`), Lambda's
stream event around such changes; the bus's rules as infra/resources.json defines them (`routed`),
and an event as a rule's target receives it (`delivered`, `target_message`).

Images hold what the stream's deserializer gives the app: numbers as `Decimal`, a history as a
list of maps, as the adapters store them (adapters/products_table.py, adapters/orders_table.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from chalicelib.domain.events import Change, DomainEvent
from chalicelib.domain.orders import Order
from chalicelib.domain.products import Product

__all__ = ["AT", "PRODUCT_ID", "ORDER_ID", "SELLER", "BUYER", "product_image", "order_image", "image_of_product",
           "image_of_order", "change", "StreamedItems", "stream_event", "delivered", "target_message", "rule_pattern",
           "matches", "routed", "SALES_RULES", "LOW_STOCK_RULE"]

AT = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
PRODUCT_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
ORDER_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAW"
SELLER = "seller-sub"
BUYER = "buyer-sub"


def product_image(**changes: Any) -> dict[str, Any]:
    """A product item of SELLER's (stock 10, version 1), with `changes` applied."""
    image: dict[str, Any] = {"id": PRODUCT_ID, "owner": SELLER, "catalog": "all", "name": "Mug",
                             "description": "A mug", "price_cents": Decimal(1200), "currency": "EUR",
                             "stock": Decimal(10), "version": Decimal(1), "created_at": AT.isoformat(),
                             "updated_at": AT.isoformat()}
    image.update({k: Decimal(v) if type(v) is int else v for k, v in changes.items()})
    return image


def order_image(status: str, *history: str, **changes: Any) -> dict[str, Any]:
    """An order item of BUYER's for 2 units of SELLER's mug (reserved at 2400 cents), in `status`
    after `history` (the statuses before it)."""
    image: dict[str, Any] = {
        "id": ORDER_ID, "buyer": BUYER, "product_id": PRODUCT_ID, "quantity": Decimal(2), "status": status,
        "payment_status": "none", "history": [{"status": s, "at": AT.isoformat()} for s in (*history, status)],
        "seller": SELLER, "product_name": "Mug", "amount_cents": Decimal(2400), "currency": "EUR",
        "created_at": AT.isoformat(), "updated_at": AT.isoformat(),
    }
    image.update({k: Decimal(v) if type(v) is int else v for k, v in changes.items()})
    return image


def image_of_product(product: Product) -> dict[str, Any]:
    return product_image(id=product.id, owner=product.owner, name=product.name, description=product.description,
                         price_cents=product.price_cents, currency=product.currency, stock=product.stock,
                         version=product.version)


def image_of_order(order: Order) -> dict[str, Any]:
    """The order item the orders table holds for `order` (absent attributes left out, as DynamoDB)."""
    image: dict[str, Any] = {
        "id": order.id, "buyer": order.buyer, "product_id": order.product_id, "quantity": Decimal(order.quantity),
        "status": str(order.status), "buyer_status": f"{order.buyer}#{order.status}",
        "payment_status": str(order.payment.status), "stock_held": order.stock_held, "notified": order.notified,
        "history": [{"status": str(h.status), "at": h.at.isoformat(), **({"reason": h.reason} if h.reason else {})}
                    for h in order.history],
        "created_at": order.created_at.isoformat(), "updated_at": order.updated_at.isoformat(),
    }
    optional = {"reason": order.reason, "payment_method": order.payment_method, "currency": order.currency,
                "amount_cents": None if order.amount_cents is None else Decimal(order.amount_cents),
                "payment_reference": order.payment.reference, "seller": order.seller,
                "product_name": order.product_name}
    image.update({k: v for k, v in optional.items() if v is not None})
    return image


def change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, change_id: str = "c-1",
           at: datetime = AT, trace_header: str | None = None) -> Change:
    return Change(change_id=change_id, at=at, old=old, new=new, trace_header=trace_header)


class StreamedItems[T](dict[str, T]):
    """A fake's table (`items`) that records each write as one stream record: `changes`, in order,
    with ids 1, 2, ... and the clock's time at the write."""

    def __init__(self, image_of: Callable[[T], Mapping[str, Any]], clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.changes: list[Change] = []
        self._image_of = image_of
        self._clock = clock

    def __setitem__(self, key: str, value: T) -> None:
        old = self.get(key)
        super().__setitem__(key, value)
        self._record(None if old is None else self._image_of(old), self._image_of(value))

    def __delitem__(self, key: str) -> None:
        old = self[key]
        super().__delitem__(key)
        self._record(self._image_of(old), None)

    def _record(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        self.changes.append(change(old, new, change_id=str(len(self.changes) + 1), at=self._clock()))


def stream_event(records: list[tuple[str, Change]], *, table: str = "products") -> dict[str, Any]:
    """Lambda's event for a batch of `table`'s stream: (sequence number, change) per record, the
    images as DynamoDB JSON."""
    serializer = TypeSerializer()

    def image(item: Mapping[str, Any] | None) -> dict[str, Any]:
        return {} if item is None else {k: serializer.serialize(v) for k, v in item.items()}

    def record(sequence: str, c: Change) -> dict[str, Any]:
        body: dict[str, Any] = {"ApproximateCreationDateTime": c.at.timestamp(), "Keys": {"id": {"S": "k"}},
                                "SequenceNumber": sequence, "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        if c.old is not None:
            body["OldImage"] = image(c.old)
        if c.new is not None:
            body["NewImage"] = image(c.new)
        kind = "INSERT" if c.old is None else "REMOVE" if c.new is None else "MODIFY"
        return {"eventID": c.change_id, "eventName": kind, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1", "dynamodb": body,
                "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-23T12:00:00.000"}

    return {"Records": [record(sequence, c) for sequence, c in records]}


RESOURCES = Path(__file__).resolve().parents[2] / "infra" / "resources.json"


def rule_pattern(rule: str) -> dict[str, Any]:
    """The EventPattern of `rule` in infra/resources.json (the one definition the stack deploys)."""
    with RESOURCES.open(encoding="utf-8") as file:
        pattern: dict[str, Any] = json.load(file)["Resources"][rule]["Properties"]["EventPattern"]
    return pattern


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's matching for the subset the rules use: each field's value (or, for an array,
    one of its elements) is one of the pattern's values; nested objects match field by field."""
    for key, wanted in pattern.items():
        value = event.get(key)
        if isinstance(wanted, Mapping):
            if not (isinstance(value, Mapping) and matches(wanted, value)):
                return False
            continue
        assert all(isinstance(w, (str, int)) for w in wanted), f"a pattern this helper does not know: {wanted}"
        values = value if isinstance(value, list) else [value]
        if not any(v in wanted for v in values):
            return False
    return True


def routed(events: list[DomainEvent], *rules: str) -> list[DomainEvent]:
    """The events any of `rules` (names in infra/resources.json) sends on to its target."""
    patterns = [rule_pattern(rule) for rule in rules]
    return [e for e in events if any(matches(p, {"source": str(e.source), "detail-type": str(e.detail_type),
                                                 "detail": e.detail}) for p in patterns)]


SALES_RULES = ("SalesOrderEventsRule", "SalesProductNamesRule")
LOW_STOCK_RULE = "LowStockRule"


def delivered(event: DomainEvent) -> tuple[str, dict[str, Any]]:
    """The event's detail-type and detail as its queue's consumer reads them (JSON, as PutEvents
    sends the detail: adapters/eventbridge.py)."""
    detail: dict[str, Any] = json.loads(json.dumps(event.detail, default=str))
    return str(event.detail_type), detail


def target_message(event: DomainEvent, event_number: int = 1) -> str:
    """The body an SQS target of a rule receives for `event`: EventBridge's envelope."""
    detail_type, detail = delivered(event)
    return json.dumps({"version": "0", "id": f"00000000-0000-0000-0000-{event_number:012d}",
                       "detail-type": detail_type, "source": str(event.source), "account": "123456789012",
                       "time": event.at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1", "resources": [],
                       "detail": detail})
