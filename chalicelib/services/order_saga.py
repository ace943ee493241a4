"""The order saga's steps (Step Functions calls one Lambda per step) and the ports they use.

The state machine (infra/order_saga.asl.json) decides the order of the steps, their retries and
the compensation; each step here does one thing, idempotently, and raises a typed error the
state machine can catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["PaymentProvider", "Mailer", "Directory"]


class PaymentProvider(Protocol):
    """A card payment provider (adapters/stripe_payments.py speaks Stripe's PaymentIntents).

    Every call carries `idempotency_key` (domain.payments.payment_step_key): the provider does each
    at most once, and answers a repeat with the first answer. Raises PaymentDeclined (the card said
    no), PaymentProviderUnavailable (5xx, 429, timeout: retry later) or PaymentRefused (anything
    else the provider rejects)."""

    def authorize(self, *, order_id: str, amount_cents: int, currency: str, payment_method: str,
                  idempotency_key: str) -> str:
        """Create and confirm a manual-capture payment for the amount; returns its reference."""

    def capture(self, reference: str, *, idempotency_key: str) -> None:
        """Take the authorized amount."""

    def void(self, reference: str, *, idempotency_key: str) -> None:
        """Release an authorization that was not captured."""

    def refund(self, reference: str, *, idempotency_key: str) -> None:
        """Give back a captured payment in full."""


class Mailer(Protocol):
    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        """Send a plain-text e-mail; raises DependencyUnavailable when it could not be sent."""


class Directory(Protocol):
    def email_of(self, user_id: str) -> str | None:
        """The user's e-mail address (the user pool's `email` attribute of the user whose `sub`
        is `user_id`), None when the user or the attribute does not exist."""
