"""The order saga over in-memory fakes: the consumer reserves, infra/order_saga.asl.json (run by
tests/unit/saga_runner.py) drives OrderSaga's steps, the buyer may cancel at any point.

Every test ends by checking API.md's invariants on the whole shop (`assert_invariants`): stock
conserved, at most one capture per order and only for a confirmed order (else refunded), exactly
one ending per ended order, and two payment calls per confirmed order.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chalicelib.bootstrap import bootstrap
from chalicelib.domain.commands import PlaceOrder, parse_command
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.identity import Caller
from chalicelib.domain.orders import (
    CANCELLED, CANCELLING, CONFIRMED, ENDINGS, FAILED, PAID, PAYMENT_FAILED, QUEUED, REJECTED, RESERVED,
    CannotCancel, Order, OrderPlaced, OrderStatus, Reason, WriteOutcome,
)
from chalicelib.domain.payments import PaymentStatus
from chalicelib.domain.products import Product
from tests.unit.fakes import (
    FakeClock, FakePaymentProvider, InMemoryDirectory, InMemoryMailer, InMemoryOrderSagas, InMemoryTracer,
    SequentialIds, fake_clients, fake_settings,
)
from tests.unit.saga_runner import Execution, SagaRunner, load_definition

ALICE = Caller(sub="alice-sub", username="alice")
ALICE_EMAIL = "alice@example.com"
VISA = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"
NO_FUNDS = "pm_card_chargeDeclinedInsufficientFunds"
UNAVAILABLE = "pm_card_unavailable"
TRACE_HEADER = "Root=1-6b045119-d652ce8931010b71dce080f7;Parent=53995c3f42cd8ad8;Sampled=1"
PRICE = 1200


class Shop:
    """Orders placed through the service, reserved by the consumer, fulfilled by the saga."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.ids = SequentialIds()
        self.sagas = InMemoryOrderSagas()
        self.payments = FakePaymentProvider()
        self.mailer = InMemoryMailer()
        self.directory = InMemoryDirectory({ALICE.sub: ALICE_EMAIL})
        clients = fake_clients(clock=self.clock, order_sagas=self.sagas, payments=self.payments,
                               mailer=self.mailer, directory=self.directory)
        self.orders = clients.orders
        self.products = clients.products
        self.services = bootstrap(fake_settings(), clients=clients, clock=self.clock, ids=self.ids,
                                  tracer=InMemoryTracer(header=TRACE_HEADER))
        self.saga = self.services.order_saga
        self.runner = SagaRunner(self.saga, clock=self.clock)
        self.initial_stock: dict[str, int] = {}

    def product(self, stock: int = 10) -> str:
        product_id = self.ids()
        self.products.add(Product(id=product_id, owner="seller-sub", name="Mug", description="",
                                  price_cents=PRICE, currency="EUR", stock=stock, version=1,
                                  created_at=self.clock(), updated_at=self.clock()))
        self.initial_stock[product_id] = stock
        return product_id

    def place(self, product_id: str, quantity: int = 1, card: str = VISA) -> str:
        raw = {"product_id": product_id, "quantity": quantity, "payment_method": card}
        placed = self.services.orders.place(ALICE, parse_command(PlaceOrder, raw), raw_body=raw,
                                            idempotency_key=None)
        return str(placed.body["order_id"])

    def message(self, order_id: str) -> OrderPlaced:
        order = self.order(order_id)
        return OrderPlaced(order.id, order.buyer, order.product_id, order.quantity)

    def deliver(self, order_id: str) -> Any:
        return self.services.order_consumer.apply(self.message(order_id))

    def run_sagas(self) -> list[Execution]:
        return self.runner.run_pending(self.sagas)

    def order_through(self, card: str = VISA, quantity: int = 1, stock: int = 10) -> tuple[str, str]:
        """A product, and an order of it placed, reserved and taken through its saga."""
        product_id = self.product(stock)
        order_id = self.place(product_id, quantity, card)
        self.deliver(order_id)
        self.run_sagas()
        return product_id, order_id

    def cancel(self, order_id: str) -> Order:
        return self.services.orders.cancel(ALICE, order_id)

    def order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        assert order is not None
        return order

    def stock(self, product_id: str) -> int:
        return self.products.get(product_id).stock

    def statuses(self, order_id: str) -> list[OrderStatus]:
        return [entry.status for entry in self.order(order_id).history]


def assert_invariants(shop: Shop) -> None:
    """API.md's invariants over every order and product of the shop."""
    orders = list(shop.orders.items.values())
    for product_id, initial in shop.initial_stock.items():
        product = shop.products.get(product_id)
        if product is None:
            continue  # deleted: its units went with it
        held = sum(o.quantity for o in orders if o.product_id == product_id and o.stock_held)
        assert product.stock >= 0
        assert product.stock + held == initial, f"stock of {product_id} not conserved"
        if all(o.ended or o.status == CONFIRMED for o in orders if o.product_id == product_id):
            confirmed = sum(o.quantity for o in orders if o.product_id == product_id and o.status == CONFIRMED)
            assert product.stock + confirmed == initial
    intents = {intent.order_id: intent for intent in shop.payments.intents.values()}
    assert len(intents) == len(shop.payments.intents), "more than one authorization for an order"
    assert not [r for r, n in Counter(shop.payments.captures).items() if n > 1], "captured twice"
    for order in orders:
        endings = [entry for entry in order.history if entry.status in ENDINGS]
        assert len(endings) == (1 if order.ended else 0), f"{order.id}: endings {endings}"
        assert order.history[-1].status == order.status
        if order.ended:
            assert not order.stock_held and order.payment.status not in (PaymentStatus.AUTHORIZED,
                                                                         PaymentStatus.CAPTURED)
        intent = intents.get(order.id)
        if intent is None:
            continue
        if intent.status == "succeeded":  # captured and kept
            assert order.status == CONFIRMED and order.payment.status == PaymentStatus.CAPTURED
        if intent.reference in shop.payments.captures and order.status != CONFIRMED:
            assert intent.status == "refunded" and order.status in (CANCELLED, FAILED, PAYMENT_FAILED)
        if order.ended:
            assert intent.status in ("canceled", "refunded", "requires_payment_method"), "money held by an ended order"
        if order.status == CONFIRMED:
            assert shop.payments.calls[order.id] == 2  # authorize, capture: each done once


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture(autouse=True)
def _invariants_hold_at_the_end(shop: Shop) -> Any:
    yield
    assert_invariants(shop)


# The runner follows the definition


def test_the_runner_reads_the_steps_retries_and_catches_of_the_definition():
    states = load_definition()["States"]
    steps = {name: s["Parameters"]["Payload"]["step"] for name, s in states.items() if s["Type"] == "Task"}

    assert steps == {"AuthorizePayment": "authorize", "CapturePayment": "capture", "ConfirmOrder": "confirm",
                     "NotifyBuyer": "notify", "ReleasePayment": "release", "Restock": "restock",
                     "EndOrder": "end"}
    assert {s["Type"] for s in states.values()} <= {"Choice", "Pass", "Task", "Succeed", "Fail"}  # all it knows


def test_the_runner_retries_as_the_definition_says_not_as_it_was_written_once(shop):
    definition = load_definition()
    definition["States"]["AuthorizePayment"]["Retry"][0]["MaxAttempts"] = 1
    runner = SagaRunner(shop.saga, definition=definition)
    order_id = shop.place(shop.product(), card=UNAVAILABLE)
    shop.deliver(order_id)

    (execution,) = runner.run_pending(shop.sagas)

    assert execution.attempts["AuthorizePayment"] == 2


# Approved


def test_an_approved_order_is_authorized_captured_confirmed_and_the_buyer_told(shop):
    product_id = shop.product(stock=10)
    order_id = shop.place(product_id, 3)
    assert shop.deliver(order_id) == RESERVED

    (execution,) = shop.run_sagas()

    assert execution.status == "SUCCEEDED"
    assert execution.path == ["Route", "AuthorizePayment", "CapturePayment", "ConfirmOrder", "NotifyBuyer"]
    order = shop.order(order_id)
    assert (order.status, order.reason, order.notified) == (CONFIRMED, None, True)
    assert shop.statuses(order_id) == [QUEUED, RESERVED, PAID, CONFIRMED]
    assert order.payment.status == PaymentStatus.CAPTURED and order.payment.reference is not None
    (intent,) = shop.payments.intents.values()
    assert (intent.reference, intent.amount_cents, intent.currency, intent.status) == (
        order.payment.reference, 3 * PRICE, "EUR", "succeeded")
    assert shop.stock(product_id) == 7
    (mail,) = shop.mailer.sent
    assert mail.to == (ALICE_EMAIL,) and order_id in mail.subject and order_id in mail.text


def test_the_buyer_pays_the_price_of_the_reservation_not_a_later_one(shop):
    product_id = shop.product()
    order_id = shop.place(product_id, 2)
    shop.deliver(order_id)
    product = shop.products.get(product_id)
    shop.products.update(product_id, owner=product.owner, expected_version=product.version,
                         changes={"price_cents": 9999}, now=shop.clock())

    shop.run_sagas()

    assert shop.order(order_id).amount_cents == 2 * PRICE
    assert [i.amount_cents for i in shop.payments.intents.values()] == [2 * PRICE]


def test_a_buyer_without_an_address_is_not_written_to_and_the_order_stays_confirmed(shop):
    shop.directory.emails.clear()

    _, order_id = shop.order_through()

    assert shop.runner.executions[0].status == "SUCCEEDED"
    assert (shop.order(order_id).status, shop.order(order_id).notified) == (CONFIRMED, False)
    assert shop.mailer.sent == []


def test_when_the_mail_cannot_be_sent_the_execution_fails_but_the_order_stays_confirmed_and_paid(shop):
    shop.mailer.failing = True

    _, order_id = shop.order_through()

    (execution,) = shop.runner.executions
    assert (execution.status, execution.failed_at) == ("FAILED", "NotifyBuyer")  # a redrive resumes there
    assert execution.attempts["NotifyBuyer"] == 5  # retried 4 times
    order = shop.order(order_id)
    assert (order.status, order.payment.status, order.notified) == (CONFIRMED, PaymentStatus.CAPTURED, False)


# Declined


@pytest.mark.parametrize("card, reason", [(DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds")])
def test_a_declined_card_ends_the_order_payment_failed_with_the_decline_and_puts_the_stock_back(shop, card, reason):
    product_id, order_id = shop.order_through(card, quantity=2, stock=5)

    (execution,) = shop.runner.executions
    assert execution.status == "SUCCEEDED"
    assert execution.path == ["Route", "AuthorizePayment", "ReleasePayment", "Restock", "EndOrder", "Compensated"]
    assert execution.attempts["AuthorizePayment"] == 1  # a decline is not retried
    order = shop.order(order_id)
    assert (order.status, order.reason) == (PAYMENT_FAILED, reason)
    assert (order.payment.status, order.payment.failure) == (PaymentStatus.FAILED, reason)
    assert shop.statuses(order_id) == [QUEUED, RESERVED, PAYMENT_FAILED]
    assert order.history[-1].reason == reason
    assert shop.stock(product_id) == 5
    assert shop.payments.calls[order_id] == 1 and shop.payments.captures == []
    assert shop.mailer.sent == []


# The provider unavailable


def test_a_provider_that_stays_unavailable_is_retried_with_backoff_then_the_order_ends_payment_failed(shop):
    product_id, order_id = shop.order_through(UNAVAILABLE)

    (execution,) = shop.runner.executions
    assert execution.attempts["AuthorizePayment"] == 4  # the first try and 3 retries
    assert execution.waits == [1, 2, 4]
    assert execution.path[-4:] == ["ReleasePayment", "Restock", "EndOrder", "Compensated"]
    order = shop.order(order_id)
    assert (order.status, order.reason) == (PAYMENT_FAILED, Reason.PAYMENT_PROVIDER_UNAVAILABLE)
    assert shop.stock(product_id) == 10
    assert shop.payments.unavailable[order_id] == 4 and shop.payments.intents == {}


def test_a_provider_unavailable_once_is_retried_and_the_order_confirmed(shop):
    shop.payments.unavailable_next = 1

    product_id, order_id = shop.order_through()

    (execution,) = shop.runner.executions
    assert execution.attempts["AuthorizePayment"] == 2 and execution.waits == [1]
    assert shop.order(order_id).status == CONFIRMED
    assert shop.payments.calls[order_id] == 2  # the unavailable try did nothing
    assert shop.payments.requests[order_id] == 3
    assert shop.stock(product_id) == 9


def test_a_capture_that_stays_unavailable_voids_the_authorization_and_ends_payment_failed(shop):
    product_id = shop.product()
    order_id = shop.place(product_id)
    shop.deliver(order_id)
    shop.runner.faults["capture"] = lambda step, order, attempt: setattr(shop.payments, "unavailable_next", 1)

    shop.run_sagas()

    assert shop.runner.executions[0].attempts["CapturePayment"] == 4
    order = shop.order(order_id)
    assert (order.status, order.reason, order.payment.status) == (
        PAYMENT_FAILED, Reason.PAYMENT_PROVIDER_UNAVAILABLE, PaymentStatus.VOIDED)
    assert shop.payments.voids == [order.payment.reference] and shop.payments.captures == []
    assert shop.stock(product_id) == 10


def test_an_answer_lost_after_the_provider_acted_is_replayed_by_the_retry_not_done_twice(shop):
    product_id = shop.product()
    order_id = shop.place(product_id)
    shop.deliver(order_id)

    def lose_first_answer(step: str, order: str, attempt: int) -> None:
        if attempt == 1:
            shop.payments.lose_next = 1

    shop.runner.faults.update(authorize=lose_first_answer, capture=lose_first_answer)

    shop.run_sagas()

    assert shop.order(order_id).status == CONFIRMED
    assert len(shop.payments.intents) == 1 and len(shop.payments.captures) == 1
    assert shop.payments.unavailable[order_id] == 2  # each first answer lost on its way back
    assert shop.payments.requests[order_id] == 4  # each retry answered with the first answer


def test_a_capture_that_went_through_with_every_answer_lost_is_refunded_by_the_compensation(shop):
    product_id = shop.product()
    order_id = shop.place(product_id)
    shop.deliver(order_id)
    shop.runner.faults["capture"] = lambda step, order, attempt: setattr(shop.payments, "lose_next", 1)

    (execution,) = shop.run_sagas()

    assert execution.status == "SUCCEEDED"
    order = shop.order(order_id)
    assert (order.status, order.payment.status) == (PAYMENT_FAILED, PaymentStatus.REFUNDED)
    assert shop.stock(product_id) == 10


# Cancelling


def test_an_order_cancelled_while_queued_is_ended_cancelled_by_the_consumer_and_takes_nothing(shop):
    product_id = shop.product(stock=3)
    order_id = shop.place(product_id)

    answered = shop.cancel(order_id)

    assert answered.status == CANCELLING
    assert shop.deliver(order_id) == CANCELLED
    order = shop.order(order_id)
    assert (order.status, order.reason) == (CANCELLED, Reason.CANCELLED_BY_BUYER)
    assert shop.statuses(order_id) == [QUEUED, CANCELLING, CANCELLED]
    assert shop.stock(product_id) == 3 and shop.sagas.started == {}
    assert shop.deliver(order_id) == WriteOutcome.ALREADY_APPLIED  # a redelivery does nothing more


def test_an_order_cancelled_while_reserved_is_compensated_before_any_payment(shop):
    product_id = shop.product(stock=3)
    order_id = shop.place(product_id, 2)
    shop.deliver(order_id)

    shop.cancel(order_id)
    (execution,) = shop.run_sagas()

    assert execution.errors == [("AuthorizePayment", "OrderCancelled")]
    assert execution.path[-4:] == ["ReleasePayment", "Restock", "EndOrder", "Compensated"]
    order = shop.order(order_id)
    assert (order.status, order.reason) == (CANCELLED, Reason.CANCELLED_BY_BUYER)
    assert shop.statuses(order_id) == [QUEUED, RESERVED, CANCELLING, CANCELLED]
    assert shop.stock(product_id) == 3
    assert shop.payments.intents == {}


@pytest.mark.parametrize("step, payment, released", [
    ("capture", PaymentStatus.VOIDED, "voids"),  # authorized, not captured: the hold is released
    ("confirm", PaymentStatus.REFUNDED, "refunds"),  # paid: the money is given back
])
def test_an_order_cancelled_while_its_saga_runs_is_compensated_at_the_next_step(shop, step, payment, released):
    product_id = shop.product(stock=3)
    order_id = shop.place(product_id)
    shop.deliver(order_id)
    shop.runner.faults[step] = lambda *_: shop.cancel(order_id)  # the buyer cancels just before the step

    (execution,) = shop.run_sagas()

    assert ("CapturePayment" if step == "capture" else "ConfirmOrder", "OrderCancelled") in execution.errors
    order = shop.order(order_id)
    assert (order.status, order.reason, order.payment.status) == (CANCELLED, Reason.CANCELLED_BY_BUYER, payment)
    assert getattr(shop.payments, released) == [order.payment.reference]
    assert shop.stock(product_id) == 3
    assert shop.mailer.sent == []


def test_a_confirmed_order_cancelled_is_refunded_restocked_and_ends_cancelled(shop):
    product_id, order_id = shop.order_through(quantity=2, stock=5)

    answered = shop.cancel(order_id)

    assert answered.status == CANCELLING
    start = shop.sagas.started[f"{order_id}-cancel"]
    assert (start.input, start.trace_header) == ({"order_id": order_id, "action": "cancel"}, TRACE_HEADER)
    (execution,) = shop.run_sagas()
    assert execution.path == ["Route", "StartCancellation", "ReleasePayment", "Restock", "EndOrder", "Compensated"]
    order = shop.order(order_id)
    assert (order.status, order.reason, order.payment.status) == (
        CANCELLED, Reason.CANCELLED_BY_BUYER, PaymentStatus.REFUNDED)
    assert shop.statuses(order_id) == [QUEUED, RESERVED, PAID, CONFIRMED, CANCELLING, CANCELLED]
    assert shop.payments.refunds == [order.payment.reference] and len(shop.payments.captures) == 1
    assert shop.stock(product_id) == 5


@pytest.mark.parametrize("card, status", [(VISA, CANCELLED), (DECLINED, PAYMENT_FAILED), (UNAVAILABLE, PAYMENT_FAILED)])
def test_an_ended_order_cannot_be_cancelled(shop, card, status):
    _, order_id = shop.order_through(card)
    if status == CANCELLED:
        shop.cancel(order_id)
        shop.run_sagas()
    assert shop.order(order_id).status == status
    before = shop.order(order_id)

    with pytest.raises(CannotCancel):
        shop.cancel(order_id)

    assert shop.order(order_id) == before


def test_a_rejected_or_failed_order_cannot_be_cancelled(shop):
    rejected = shop.place(shop.product(stock=0))
    shop.deliver(rejected)
    not_processed = shop.place(shop.product())
    shop.services.order_consumer.give_up(shop.message(not_processed))

    for order_id, status in ((rejected, REJECTED), (not_processed, FAILED)):
        assert shop.order(order_id).status == status
        with pytest.raises(CannotCancel):
            shop.cancel(order_id)


def test_cancelling_again_answers_the_order_and_does_nothing_twice(shop):
    _, order_id = shop.order_through()
    first = shop.cancel(order_id)

    again = shop.cancel(order_id)

    assert again.status == CANCELLING == first.status
    assert shop.statuses(order_id).count(CANCELLING) == 1
    assert list(shop.sagas.started) == [order_id, f"{order_id}-cancel"]  # one cancellation
    assert len(shop.run_sagas()) == 1
    assert shop.order(order_id).status == CANCELLED
    assert len(shop.payments.refunds) == 1


def test_a_cancellation_that_could_not_be_started_is_started_when_the_buyer_asks_again(shop):
    _, order_id = shop.order_through()
    shop.sagas.failing = True
    with pytest.raises(DependencyUnavailable):
        shop.cancel(order_id)
    shop.sagas.failing = False

    shop.cancel(order_id)
    shop.run_sagas()

    assert shop.order(order_id).status == CANCELLED


# Faults midway


@pytest.mark.parametrize("crash, attempts", [
    (RuntimeError("the process died"), 1),  # unexpected: not retried
    (DependencyUnavailable("DynamoDB is throttling"), 6),  # retried 5 times first (1 + 2 + 4 + 8 + 16 s)
])
def test_a_crash_between_capture_and_confirm_refunds_restocks_and_ends_failed(shop, crash, attempts):
    product_id = shop.product(stock=4)
    order_id = shop.place(product_id, 2)
    shop.deliver(order_id)

    def crashing(*_: Any) -> None:
        raise crash

    shop.runner.faults["confirm"] = crashing

    (execution,) = shop.run_sagas()

    assert execution.attempts["ConfirmOrder"] == attempts
    assert execution.path[-4:] == ["ReleasePayment", "Restock", "EndOrder", "Compensated"]
    order = shop.order(order_id)
    assert (order.status, order.reason, order.payment.status) == (
        FAILED, Reason.UNEXPECTED_ERROR, PaymentStatus.REFUNDED)
    assert shop.statuses(order_id) == [QUEUED, RESERVED, PAID, FAILED]
    assert shop.payments.refunds == [order.payment.reference]
    assert shop.stock(product_id) == 4


def test_every_step_run_twice_captures_once_mails_once_and_confirms(shop):
    shop.runner.repeat = True

    product_id, order_id = shop.order_through(quantity=2)

    assert shop.order(order_id).status == CONFIRMED
    assert len(shop.payments.captures) == 1 and len(shop.mailer.sent) == 1
    assert shop.payments.requests[order_id] == 2  # the second runs found the work recorded: no new request
    assert shop.stock(product_id) == 8


@pytest.mark.parametrize("card", [VISA, DECLINED, UNAVAILABLE])
def test_every_compensating_step_run_twice_releases_once_and_restocks_once(shop, card):
    shop.runner.repeat = True
    product_id = shop.product(stock=5)
    order_id = shop.place(product_id, 2, card)
    shop.deliver(order_id)
    if card == VISA:
        shop.run_sagas()
        shop.cancel(order_id)

    shop.run_sagas()

    order = shop.order(order_id)
    assert order.ended and shop.stock(product_id) == 5
    assert len(shop.payments.refunds) == (1 if card == VISA else 0)
    assert [e.status for e in order.history if e.status in ENDINGS] == [order.status]


def test_a_crash_after_the_provider_answered_and_before_it_was_recorded_is_redone_with_the_same_key(shop):
    product_id = shop.product()
    order_id = shop.place(product_id)
    shop.deliver(order_id)
    record_payment = shop.orders.record_payment
    crashed: list[PaymentStatus] = []

    def crash_once(order: str, expected: PaymentStatus, payment: Any, now: Any) -> WriteOutcome:
        if payment.status not in crashed:
            crashed.append(payment.status)
            raise DependencyUnavailable("DynamoDB timed out")
        return record_payment(order, expected, payment, now)

    shop.orders.record_payment = crash_once

    shop.run_sagas()

    assert crashed == [PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED]
    assert shop.order(order_id).status == CONFIRMED
    assert len(shop.payments.intents) == 1 and len(shop.payments.captures) == 1
    assert shop.payments.requests[order_id] == 4  # the retries asked again, with the same keys


def test_restocking_a_product_deleted_meanwhile_releases_the_order_only(shop):
    product_id = shop.product(stock=5)
    order_id = shop.place(product_id, 2, DECLINED)
    shop.deliver(order_id)
    del shop.products.items[product_id]

    shop.run_sagas()

    order = shop.order(order_id)
    assert (order.status, order.stock_held) == (PAYMENT_FAILED, False)


# Starting twice, delivering twice, giving up


def test_a_second_start_of_the_same_order_is_a_no_op(shop):
    product_id = shop.product()
    order_id = shop.place(product_id)
    shop.deliver(order_id)

    shop.sagas.start(order_id, None)
    shop.run_sagas()

    assert len(shop.runner.executions) == 1 and shop.sagas.start_calls == 2
    assert shop.order(order_id).status == CONFIRMED


def test_a_delivery_repeated_at_every_stage_reserves_once_and_runs_one_saga(shop):
    product_id = shop.product(stock=5)
    order_id = shop.place(product_id, 2)

    outcomes = [shop.deliver(order_id), shop.deliver(order_id)]
    shop.run_sagas()
    outcomes.append(shop.deliver(order_id))  # after confirmation
    shop.cancel(order_id)
    shop.run_sagas()
    outcomes.append(shop.deliver(order_id))  # after its ending

    assert outcomes == [RESERVED] + [WriteOutcome.ALREADY_APPLIED] * 3
    assert list(shop.sagas.started) == [order_id, f"{order_id}-cancel"]
    assert len(shop.runner.executions) == 2
    assert shop.order(order_id).status == CANCELLED and shop.stock(product_id) == 5


def test_a_queued_order_whose_message_failed_every_delivery_ends_failed_not_processed(shop):
    product_id = shop.product(stock=5)
    order_id = shop.place(product_id)

    assert shop.services.order_consumer.give_up(shop.message(order_id)) == FAILED

    order = shop.order(order_id)
    assert (order.status, order.reason) == (FAILED, Reason.NOT_PROCESSED)
    assert shop.stock(product_id) == 5 and shop.sagas.started == {}


def test_a_reserved_order_whose_saga_never_started_is_started_by_the_dead_letter_consumer(shop):
    product_id = shop.product(stock=5)
    order_id = shop.place(product_id)
    shop.sagas.failing = True
    with pytest.raises(DependencyUnavailable):
        shop.deliver(order_id)  # reserved, then the start failed: every delivery alike
    shop.sagas.failing = False

    assert shop.services.order_consumer.give_up(shop.message(order_id)) == WriteOutcome.ALREADY_APPLIED

    assert list(shop.sagas.started) == [order_id]
    shop.run_sagas()
    assert shop.order(order_id).status == CONFIRMED and shop.stock(product_id) == 4


def test_giving_up_on_a_confirmed_order_changes_nothing(shop):
    _, order_id = shop.order_through()
    before = shop.order(order_id)

    assert shop.services.order_consumer.give_up(shop.message(order_id)) == WriteOutcome.ALREADY_APPLIED

    assert shop.order(order_id) == before
    assert shop.run_sagas() == []  # starting its saga again was a no-op


def test_giving_up_on_an_order_cancelled_while_queued_ends_it_cancelled(shop):
    order_id = shop.place(shop.product())
    shop.cancel(order_id)

    assert shop.services.order_consumer.give_up(shop.message(order_id)) == CANCELLED

    assert (shop.order(order_id).status, shop.order(order_id).reason) == (CANCELLED, Reason.CANCELLED_BY_BUYER)


def test_a_compensation_step_that_fails_every_retry_fails_the_execution_there_and_a_redrive_finishes_it(shop):
    product_id = shop.product(stock=4)
    order_id = shop.place(product_id, 2, card=DECLINED)
    shop.deliver(order_id)
    shop.runner.faults["restock"] = lambda *_: (_ for _ in ()).throw(DependencyUnavailable("throttled"))

    (execution,) = shop.run_sagas()

    assert (execution.status, execution.failed_at) == ("FAILED", "Restock")
    assert execution.attempts["Restock"] == 7  # retried 6 times
    assert shop.order(order_id).stock_held and not shop.order(order_id).ended  # an alarm, nothing lost
    del shop.runner.faults["restock"]
    shop.runner.redrive(execution)

    assert execution.status == "SUCCEEDED"
    order = shop.order(order_id)
    assert (order.status, order.reason) == (PAYMENT_FAILED, "card_declined")
    assert shop.stock(product_id) == 4


def test_an_authorization_whose_recording_failed_every_retry_is_found_again_and_voided(shop):
    product_id = shop.product(stock=4)
    order_id = shop.place(product_id, 2)
    shop.deliver(order_id)
    record_payment, failures = shop.orders.record_payment, []

    def failing_to_record(order_id: str, expected: Any, payment: Any, now: Any) -> Any:
        if payment.status == PaymentStatus.AUTHORIZED and len(failures) < 6:  # the step and its 5 retries
            failures.append(payment)
            raise DependencyUnavailable("DynamoDB throttled")
        return record_payment(order_id, expected, payment, now)

    shop.orders.record_payment = failing_to_record

    (execution,) = shop.run_sagas()

    assert execution.status == "SUCCEEDED" and execution.errors[-1] == ("AuthorizePayment", "DependencyUnavailable")
    order = shop.order(order_id)
    assert (order.status, order.reason, order.payment.status) == (FAILED, Reason.UNEXPECTED_ERROR, PaymentStatus.VOIDED)
    (intent,) = shop.payments.intents.values()
    assert intent.status == "canceled" and shop.payments.voids == [intent.reference]  # the hold released
    assert shop.stock(product_id) == 4
