"""The order saga's steps (Step Functions calls one Lambda per step) and the ports they use.

The state machine (infra/order_saga.asl.json) decides the order of the steps, their retries and
the compensation; each step here does one thing, idempotently, and raises a typed error the
state machine can catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.errors import DependencyUnavailable, StorefrontError
from chalicelib.domain.orders import (
    CANCELLED, CANCELLING, CONFIRMED, FAILED, PAID, PAYMENT_FAILED, RESERVED, Order, OrderCancelled, OrderEnded,
    OrderStatus, Reason, WriteOutcome,
)
from chalicelib.domain.payments import (
    Payment, PaymentDeclined, PaymentProviderUnavailable, PaymentRefused, PaymentStatus, payment_step_key,
)
from chalicelib.services.orders import OrderRepository
from chalicelib.services.shared import Clock, Directory, Mailer

__all__ = ["PaymentProvider", "OrderSaga", "StepError", "Ending"]


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


class StepError(StorefrontError):
    """A step was asked to do something the order's state does not allow (input the state
    machine would never send, or a step out of order): a fault to look at, not to retry."""


@dataclass(frozen=True)
class Ending:
    status: OrderStatus
    reason: str


# The errors the state machine catches by name (a Lambda error's name is its exception's class
# name), and the ending each leads to when it stops the saga.
_ENDING_BY_ERROR = {
    "PaymentProviderUnavailable": Ending(PAYMENT_FAILED, Reason.PAYMENT_PROVIDER_UNAVAILABLE),
    "OrderCancelled": Ending(CANCELLED, Reason.CANCELLED_BY_BUYER),
}
# Errors after which no payment can have been authorized without the order knowing: a decline
# (recorded as such), a cancel or an ended order seen before the provider was called, the provider
# unavailable (it keeps no answer of a request it failed), and a cancellation (no error).
_NO_HIDDEN_PAYMENT = frozenset({"PaymentDeclined", "OrderCancelled", "OrderEnded", "PaymentProviderUnavailable"})


def _may_hold_money(error: str | None) -> bool:
    return error is not None and error not in _NO_HIDDEN_PAYMENT


# Statuses from which compensation may end an order (a confirmed order is first `cancelling`).
_COMPENSABLE = frozenset({RESERVED, PAID, CANCELLING})


class OrderSaga:
    """One method per step of infra/order_saga.asl.json. Each can run twice (a retry, a redrive)
    and do nothing new the second time: the provider gets the same Idempotency-Key, and every
    write is conditioned on the state the step expects."""

    def __init__(self, orders: OrderRepository, payments: PaymentProvider, mailer: Mailer, directory: Directory,
                 *, clock: Clock) -> None:
        self._orders = orders
        self._payments = payments
        self._mailer = mailer
        self._directory = directory
        self._clock = clock

    def _order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise StepError(f"order {order_id} does not exist")
        return order

    def _going_forward(self, order_id: str) -> Order:
        """The order, if the saga may still take it forward; raises OrderCancelled or OrderEnded."""
        order = self._order(order_id)
        if order.status == CANCELLING:
            raise OrderCancelled(f"order {order_id} is being cancelled")
        if order.ended:
            raise OrderEnded(f"order {order_id} has ended {order.status}")
        return order

    def authorize(self, order_id: str) -> Payment:
        order = self._going_forward(order_id)
        if order.status != RESERVED:
            raise StepError(f"order {order_id} is {order.status}: only a reserved order is authorized")
        if order.payment.status == PaymentStatus.FAILED:  # this step ran before and was declined
            raise PaymentDeclined(order.payment.failure or Reason.CARD_DECLINED)
        if order.payment.status != PaymentStatus.NONE:
            return order.payment  # authorized by an earlier run of this step
        if order.amount_cents is None or order.currency is None or order.payment_method is None:
            raise StepError(f"order {order_id} has no amount or payment method")
        try:
            reference = self._payments.authorize(
                order_id=order.id, amount_cents=order.amount_cents, currency=order.currency,
                payment_method=order.payment_method, idempotency_key=payment_step_key(order.id, "authorize"))
        except PaymentDeclined as declined:
            self._orders.record_payment(order.id, PaymentStatus.NONE,
                                        Payment(PaymentStatus.FAILED, failure=declined.reason), self._clock())
            raise
        payment = Payment(PaymentStatus.AUTHORIZED, reference)
        self._orders.record_payment(order.id, PaymentStatus.NONE, payment, self._clock())
        return payment

    def capture(self, order_id: str) -> Payment:
        order = self._going_forward(order_id)
        payment = order.payment
        if payment.status == PaymentStatus.AUTHORIZED and payment.reference is not None:
            self._payments.capture(payment.reference, idempotency_key=payment_step_key(order.id, "capture"))
            payment = Payment(PaymentStatus.CAPTURED, payment.reference)
            self._orders.record_payment(order.id, PaymentStatus.AUTHORIZED, payment, self._clock())
        elif payment.status != PaymentStatus.CAPTURED:
            raise StepError(f"order {order_id}'s payment is {payment.status}: nothing to capture")
        self._advance(order, RESERVED, PAID)
        return payment

    def confirm(self, order_id: str) -> None:
        self._advance(self._going_forward(order_id), PAID, CONFIRMED)

    def _advance(self, order: Order, source: OrderStatus, to: OrderStatus) -> None:
        if order.status == to:
            return  # an earlier run of this step got this far
        if order.status == source:
            moved = self._orders.move(order.id, order.buyer, source=source, to=to, now=self._clock())
            if moved == WriteOutcome.APPLIED:
                return
            order = self._going_forward(order.id)  # it moved under us: a cancel, most likely
            if order.status == to:
                return
        raise StepError(f"order {order.id} is {order.status}, not {source}")

    def notify(self, order_id: str) -> bool:
        """E-mail the buyer that the order is confirmed; False when there is nobody to write to.

        Sent, then recorded: a crash between the two sends the e-mail once more on the retry."""
        order = self._order(order_id)
        if order.notified or order.status != CONFIRMED:
            return order.notified
        address = self._directory.email_of(order.buyer)
        if address is None:
            return False
        amount = "" if order.amount_cents is None else f", {order.amount_cents / 100:.2f} {order.currency}"
        self._mailer.send([address], f"Your order {order.id} is confirmed",
                          f"Thank you for your order.\n\nOrder: {order.id}\nProduct: {order.product_id}\n"
                          f"Quantity: {order.quantity}{amount}\n\nIt is paid and confirmed.\n")
        self._orders.mark_notified(order.id, self._clock())
        return True

    def release_payment(self, order_id: str, error: str | None = None) -> Payment:
        """Compensation: void an authorization, refund a capture; nothing else holds money.

        `error` is what stopped the saga. After an unexpected one, a payment with no reference
        recorded may still exist: the provider authorized, and recording its answer failed every
        retry. The authorize call is then repeated under its Idempotency-Key, which only gives
        back the first answer's reference (or authorizes now, if the first call never arrived),
        and what it names is voided."""
        order = self._order(order_id)
        payment = order.payment
        if payment.reference is None and payment.status == PaymentStatus.NONE and _may_hold_money(error):
            payment = self._recover_authorization(order)
        if payment.reference is None:
            return payment
        if payment.status == PaymentStatus.AUTHORIZED:
            try:
                self._payments.void(payment.reference, idempotency_key=payment_step_key(order.id, "void"))
                released = Payment(PaymentStatus.VOIDED, payment.reference)
            except PaymentRefused:
                # The capture may have gone through with every answer lost: only a refund gives it back.
                self._payments.refund(payment.reference, idempotency_key=payment_step_key(order.id, "refund"))
                released = Payment(PaymentStatus.REFUNDED, payment.reference)
        elif payment.status == PaymentStatus.CAPTURED:
            self._payments.refund(payment.reference, idempotency_key=payment_step_key(order.id, "refund"))
            released = Payment(PaymentStatus.REFUNDED, payment.reference)
        else:
            return payment
        self._orders.record_payment(order.id, payment.status, released, self._clock())
        return released

    def _recover_authorization(self, order: Order) -> Payment:
        if order.amount_cents is None or order.currency is None or order.payment_method is None:
            return order.payment
        try:
            reference = self._payments.authorize(
                order_id=order.id, amount_cents=order.amount_cents, currency=order.currency,
                payment_method=order.payment_method, idempotency_key=payment_step_key(order.id, "authorize"))
        except (PaymentDeclined, PaymentRefused, PaymentProviderUnavailable):
            return order.payment  # nothing was authorized (or the provider cannot say: it holds nothing we know of)
        payment = Payment(PaymentStatus.AUTHORIZED, reference)
        self._orders.record_payment(order.id, PaymentStatus.NONE, payment, self._clock())
        return payment

    def restock(self, order_id: str) -> bool:
        """Compensation: put the reserved units back (once); False when none were held."""
        order = self._order(order_id)
        if not order.stock_held:
            return False
        return self._orders.restock(order, self._clock()) == WriteOutcome.APPLIED

    def end(self, order_id: str, error: str | None) -> OrderStatus:
        """Compensation's last step: the order's one ending, from the error that stopped the saga
        (None: a cancellation). A cancel that arrived meanwhile wins: the buyer asked."""
        order = self._order(order_id)
        if order.ended:
            return order.status
        ending = self.ending_for(order, error)
        ended = self._orders.end(order.id, order.buyer, expected=_COMPENSABLE, status=ending.status,
                                 reason=ending.reason, now=self._clock())
        if ended == WriteOutcome.APPLIED:
            return ending.status
        order = self._order(order_id)
        if order.ended:
            return order.status
        # Still holding stock or money (a step before this one did not finish), or it moved:
        # the state machine retries this step.
        raise DependencyUnavailable(f"order {order_id} is {order.status} (stock held: {order.stock_held}, "
                                    f"payment {order.payment.status}); cannot end it yet")

    @staticmethod
    def ending_for(order: Order, error: str | None) -> Ending:
        if error is None or order.status == CANCELLING:
            return Ending(CANCELLED, Reason.CANCELLED_BY_BUYER)
        if error == "PaymentDeclined":
            return Ending(PAYMENT_FAILED, order.payment.failure or Reason.CARD_DECLINED)
        return _ENDING_BY_ERROR.get(error, Ending(FAILED, Reason.UNEXPECTED_ERROR))
