"""Sales as a seller reads them: confirmed orders less the confirmed ones later cancelled.

The read model is fed facts, each counted once: `SaleFact` is one order's effect on its
seller's numbers (+1 when it is confirmed, -1 when a confirmed order is cancelled), keyed by
what it counts (`order#<id>#confirmed`). The live path derives facts from domain events and the
rebuild derives the same facts from the orders themselves, so the two agree, and a fact that
arrives twice (a redelivery, a republished change, a rebuild racing the live path) counts once.
Counting is addition, so facts may arrive in any order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.orders import CANCELLED, CONFIRMED, Order, OrderStatus

__all__ = ["SaleFact", "ProductSales", "SalesReport", "NameChange", "fact_of_event", "facts_of_order", "report"]


@dataclass(frozen=True)
class SaleFact:
    key: str  # what it counts, once: "order#<id>#confirmed" or "order#<id>#cancelled"
    seller: str
    product_id: str
    product_name: str
    orders: int  # +1 or -1
    units: int
    revenue_cents: int
    at: datetime


@dataclass(frozen=True)
class NameChange:
    """A product's name as of `version`: the read model keeps the newest it has seen."""

    seller: str
    product_id: str
    name: str
    version: int


@dataclass(frozen=True)
class ProductSales:
    product_id: str
    name: str
    orders: int
    units: int
    revenue_cents: int
    as_of: datetime | None


@dataclass(frozen=True)
class SalesReport:
    orders: int
    units: int
    revenue_cents: int
    products: tuple[ProductSales, ...]
    as_of: datetime | None  # the newest fact counted; None before the first sale


def _fact(order_id: str, seller: str, product_id: str, product_name: str, quantity: int, amount_cents: int,
          at: datetime, *, cancelled: bool) -> SaleFact:
    sign = -1 if cancelled else 1
    return SaleFact(key=f"order#{order_id}#{CANCELLED if cancelled else CONFIRMED}", seller=seller,
                    product_id=product_id, product_name=product_name, orders=sign, units=sign * quantity,
                    revenue_cents=sign * amount_cents, at=at)


def fact_of_event(detail_type: str, detail: Mapping[str, Any]) -> SaleFact | None:
    """The fact an OrderConfirmed or OrderCancelled event counts, or None (a cancelled order that
    was never confirmed was never counted). Raises PoisonMessage for a detail missing a field."""
    if detail_type not in ("OrderConfirmed", "OrderCancelled"):
        raise PoisonMessage(f"not an order event the sales read model counts: {detail_type!r}")
    cancelled = detail_type == "OrderCancelled"
    if cancelled and detail.get("was_confirmed") is not True:
        return None
    try:
        fields = {k: detail[k] for k in ("order_id", "seller", "product_id", "product_name")}
        if not all(isinstance(v, str) and v for v in fields.values()):
            raise ValueError("order_id, seller, product_id and product_name must be non-empty strings")
        quantity, amount = detail["quantity"], detail["amount_cents"]
        if type(quantity) is not int or type(amount) is not int:
            raise ValueError("quantity and amount_cents must be integers")
        at = datetime.fromisoformat(str(detail["at"]))
    except (KeyError, ValueError) as exc:
        raise PoisonMessage(f"{detail_type} without what the sales read model needs: {exc}") from exc
    return _fact(fields["order_id"], fields["seller"], fields["product_id"], fields["product_name"], quantity,
                 amount, at, cancelled=cancelled)


def facts_of_order(order: Order) -> list[SaleFact]:
    """What the order counts, read from the order itself (the rebuild's source): +1 once it was
    confirmed, and -1 if it then ended cancelled. Orders reserved before sellers were recorded on
    orders (no `seller`) count nothing."""
    statuses = {entry.status for entry in order.history} | {order.status}
    seller = order.seller
    if CONFIRMED not in statuses or seller is None or order.amount_cents is None:
        return []
    name = order.product_name or order.product_id
    confirmed_at = next((e.at for e in order.history if e.status is CONFIRMED), order.updated_at)
    facts = [_fact(order.id, seller, order.product_id, name, order.quantity, order.amount_cents, confirmed_at,
                   cancelled=False)]
    if order.status is OrderStatus.CANCELLED:
        facts.append(_fact(order.id, seller, order.product_id, name, order.quantity, order.amount_cents,
                           order.updated_at, cancelled=True))
    return facts


def report(rows: Iterable[ProductSales]) -> SalesReport:
    """The seller's totals over their products' rows, best sellers (by revenue) first."""
    products: Sequence[ProductSales] = sorted(rows, key=lambda r: (-r.revenue_cents, -r.units, r.product_id))
    stamps = [r.as_of for r in products if r.as_of is not None]
    return SalesReport(orders=sum(r.orders for r in products), units=sum(r.units for r in products),
                       revenue_cents=sum(r.revenue_cents for r in products), products=tuple(products),
                       as_of=max(stamps) if stamps else None)
