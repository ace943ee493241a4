"""Orders: accepted by the API, reserved (or rejected) by the queue consumer, then paid for,
confirmed or compensated by the order saga; each reaches exactly one ending."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Mapping

from chalicelib.domain.errors import PoisonMessage, StorefrontError
from chalicelib.domain.ids import is_id
from chalicelib.domain.payments import Payment

__all__ = ["Order", "OrderPlaced", "OrderStatus", "Reason", "WriteOutcome", "HistoryEntry", "QUEUED",
           "RESERVED", "PAID", "CONFIRMED", "CANCELLING", "REJECTED", "PAYMENT_FAILED", "CANCELLED", "FAILED",
           "ENDINGS", "CANCELLABLE", "OUT_OF_STOCK", "PRODUCT_NOT_FOUND", "MAX_QUANTITY", "PAYMENT_METHOD_REGEX",
           "decide", "Offer", "OrderCancelled", "OrderEnded", "CannotCancel"]

MAX_QUANTITY = 100  # per order: a larger order is not a storefront purchase
# A payment method token as a provider issues it (Stripe: "pm_" and letters, digits, underscores).
PAYMENT_METHOD_REGEX = r"pm_[A-Za-z0-9_]{1,120}"


class OrderStatus(StrEnum):
    """Stored and answered as its value (API.md): queued -> reserved -> paid -> confirmed, and the
    endings rejected, payment_failed, cancelled (after cancelling) and failed."""

    QUEUED = "queued"
    RESERVED = "reserved"
    PAID = "paid"
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"
    REJECTED = "rejected"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Reason(StrEnum):
    """Why an order ended the way it did (`reason`); a decline gives the provider's decline code."""

    OUT_OF_STOCK = "out_of_stock"
    PRODUCT_NOT_FOUND = "product_not_found"
    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PAYMENT_PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
    CANCELLED_BY_BUYER = "cancelled_by_buyer"
    NOT_PROCESSED = "not_processed"  # its queue message exhausted its deliveries (the orders DLQ)
    UNEXPECTED_ERROR = "unexpected_error"  # a saga step failed for good; see the execution's history


class WriteOutcome(StrEnum):
    """What one conditional write of an order did (the repository's answer)."""

    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"  # the order had moved on: a redelivery, a retry, or a cancel
    STOCK_CHANGED = "stock_changed"  # not enough stock, no product, or a new price at write time


# The names the rest of the code reads (members, not copies: `QUEUED is OrderStatus.QUEUED`).
QUEUED, RESERVED, PAID, CONFIRMED = OrderStatus.QUEUED, OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.CONFIRMED
CANCELLING, REJECTED, PAYMENT_FAILED = OrderStatus.CANCELLING, OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED
CANCELLED, FAILED = OrderStatus.CANCELLED, OrderStatus.FAILED
OUT_OF_STOCK, PRODUCT_NOT_FOUND = Reason.OUT_OF_STOCK, Reason.PRODUCT_NOT_FOUND

# Nothing changes an order after one of these. `confirmed` is not among them: a buyer may still
# cancel a confirmed order (it is refunded and ends `cancelled`).
ENDINGS = frozenset({REJECTED, PAYMENT_FAILED, CANCELLED, FAILED})
# What a buyer may cancel; `cancelling` answers again without doing anything twice.
CANCELLABLE = frozenset({QUEUED, RESERVED, PAID, CONFIRMED})


@dataclass(frozen=True)
class HistoryEntry:
    status: OrderStatus
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Order:
    id: str
    buyer: str
    product_id: str
    quantity: int
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    reason: str | None = None
    payment_method: str | None = None
    amount_cents: int | None = None  # fixed when stock is reserved, at the product's price then
    currency: str | None = None
    payment: Payment = field(default_factory=Payment)
    stock_held: bool = False  # the reserved units are out of the product's stock, not yet put back
    notified: bool = False  # the buyer was e-mailed the confirmation
    history: tuple[HistoryEntry, ...] = ()
    # What was bought, as it was when the stock was reserved: the product's owner and name.
    seller: str | None = None
    product_name: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDINGS


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


@dataclass(frozen=True)
class Offer:
    """What the consumer reads of a product to reserve units of it: the reservation's write is
    conditioned on stock, price and currency, so the buyer pays the price of the moment the stock
    was taken; the order keeps the seller and name it was bought under."""

    stock: int
    price_cents: int
    currency: str
    seller: str
    name: str

    def amount_for(self, quantity: int) -> int:
        return self.price_cents * quantity


def decide(offer: Offer | None, quantity: int) -> Reason | None:
    """None to reserve, or the rejection reason, given the product's offer (None: no such product)."""
    if offer is None:
        return PRODUCT_NOT_FOUND
    if offer.stock < quantity:
        return OUT_OF_STOCK
    return None


class OrderCancelled(StorefrontError):
    """A saga step found the order `cancelling`: the saga stops going forward and compensates."""


class OrderEnded(StorefrontError):
    """A saga step found the order already ended: there is nothing left for the saga to do."""


class CannotCancel(StorefrontError):
    """The order has ended (rejected, payment_failed, cancelled, failed): 409."""
