"""Payments as the order saga sees them: what the provider did, and how it can say no."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.domain.errors import DependencyUnavailable, StorefrontError

__all__ = ["PaymentStatus", "Payment", "PaymentDeclined", "PaymentProviderUnavailable", "PaymentRefused",
           "payment_step_key", "DECLINE_REASONS"]


class PaymentStatus(StrEnum):
    """The order's payment, as recorded after each provider call (API.md: `payment.status`)."""

    NONE = "none"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    FAILED = "failed"


@dataclass(frozen=True)
class Payment:
    status: PaymentStatus = PaymentStatus.NONE
    reference: str | None = None  # the provider's id for it (a PaymentIntent id)
    failure: str | None = None  # why it failed (a decline reason), when status is FAILED


# What a decline says, as the order's reason: Stripe's `decline_code` where it is one of these,
# `card_declined` for any other decline.
DECLINE_REASONS = frozenset({"card_declined", "insufficient_funds", "expired_card", "incorrect_cvc",
                             "processing_error", "lost_card", "stolen_card", "do_not_honor", "fraudulent"})


class PaymentDeclined(StorefrontError):
    """The provider said no to this payment method (a card error): retrying will not change it."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or f"payment declined: {reason}")
        self.reason = reason if reason in DECLINE_REASONS else "card_declined"


class PaymentRefused(StorefrontError):
    """The provider refused a request it should have taken (bad key, a call out of order, an
    invalid request): a fault of ours, not of the buyer's card. Not retried."""


class PaymentProviderUnavailable(DependencyUnavailable):
    """The provider could not answer (5xx, 429, timeout, connection): retried with backoff."""


def payment_step_key(order_id: str, step: str) -> str:
    """The Idempotency-Key of one provider call of one order's saga: the same on every retry and
    redrive of that step, so the provider does it at most once."""
    return f"order-{order_id}-{step}"
