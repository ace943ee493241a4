"""Orders: accepted by the API, then confirmed or rejected exactly once by the consumer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from chalicelib.domain.ids import is_id

__all__ = ["Order", "OrderPlaced", "QUEUED", "CONFIRMED", "REJECTED", "OUT_OF_STOCK", "PRODUCT_NOT_FOUND",
           "decide", "PoisonMessage"]

QUEUED, CONFIRMED, REJECTED = "queued", "confirmed", "rejected"
OUT_OF_STOCK, PRODUCT_NOT_FOUND = "out_of_stock", "product_not_found"


class PoisonMessage(ValueError):
    """A queue message that no retry can make valid: it belongs in the dead-letter queue."""


@dataclass(frozen=True)
class Order:
    id: str
    buyer: str
    product_id: str
    quantity: int
    status: str
    created_at: datetime
    updated_at: datetime
    reason: str | None = None


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
                and type(quantity) is int and 1 <= quantity <= 100):
            raise PoisonMessage("OrderPlaced message with missing or invalid fields")
        return cls(order_id, buyer, product_id, quantity)


def decide(stock: int | None, quantity: int) -> str | None:
    """None to confirm, or the rejection reason, given the product's stock (None: no such product)."""
    if stock is None:
        return PRODUCT_NOT_FOUND
    if stock < quantity:
        return OUT_OF_STOCK
    return None
