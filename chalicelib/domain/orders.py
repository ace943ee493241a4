"""Orders: accepted by the API, then confirmed or rejected exactly once by the consumer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Mapping

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.ids import is_id

__all__ = ["Order", "OrderPlaced", "OrderStatus", "RejectReason", "WriteOutcome", "QUEUED", "CONFIRMED",
           "REJECTED", "OUT_OF_STOCK", "PRODUCT_NOT_FOUND", "MAX_QUANTITY", "decide"]

MAX_QUANTITY = 100  # per order: a larger order is not a storefront purchase


class OrderStatus(StrEnum):
    """Stored and answered as its value; `queued` until the consumer decides, then final."""

    QUEUED = "queued"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    PRODUCT_NOT_FOUND = "product_not_found"


class WriteOutcome(StrEnum):
    """What one conditional write of an order's outcome did (the repository's answer)."""

    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"  # the order had left `queued`: a redelivery, or withdrawn
    STOCK_CHANGED = "stock_changed"  # not enough stock, or no product, at write time


# The names the rest of the code reads (members, not copies: `QUEUED is OrderStatus.QUEUED`).
QUEUED, CONFIRMED, REJECTED = OrderStatus.QUEUED, OrderStatus.CONFIRMED, OrderStatus.REJECTED
OUT_OF_STOCK, PRODUCT_NOT_FOUND = RejectReason.OUT_OF_STOCK, RejectReason.PRODUCT_NOT_FOUND


@dataclass(frozen=True)
class Order:
    id: str
    buyer: str
    product_id: str
    quantity: int
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    reason: RejectReason | None = None


@dataclass(frozen=True)
class OrderPlaced:
    """The message the API sends to the orders queue: everything the consumer needs, nothing else."""

    order_id: str
    buyer: str
    product_id: str
    quantity: int

    def to_message(self) -> dict[str, Any]:
        return {"type": "OrderPlaced", "version": 1, "order_id": self.order_id, "buyer": self.buyer,
                "product_id": self.product_id, "quantity": self.quantity}

    @classmethod
    def from_message(cls, data: Any) -> "OrderPlaced":
        """Raises PoisonMessage for anything the API would not have sent."""
        # `type(...) is int`: True and 1.0 compare equal to 1, but the API never sends them.
        if (not isinstance(data, Mapping) or data.get("type") != "OrderPlaced"
                or type(data.get("version")) is not int or data["version"] != 1):
            raise PoisonMessage("not an OrderPlaced v1 message")
        order_id, buyer, product_id, quantity = (data.get(k) for k in ("order_id", "buyer", "product_id", "quantity"))
        if not (isinstance(order_id, str) and is_id(order_id) and isinstance(product_id, str) and is_id(product_id)
                and isinstance(buyer, str) and 0 < len(buyer) <= 128
                and type(quantity) is int and 1 <= quantity <= MAX_QUANTITY):
            raise PoisonMessage("OrderPlaced message with missing or invalid fields")
        return cls(order_id, buyer, product_id, quantity)


def decide(stock: int | None, quantity: int) -> RejectReason | None:
    """None to confirm, or the rejection reason, given the product's stock (None: no such product)."""
    if stock is None:
        return PRODUCT_NOT_FOUND
    if stock < quantity:
        return OUT_OF_STOCK
    return None
