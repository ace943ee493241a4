"""The order fakes keep the adapters' contracts: the conditions of adapters/orders_table.py's
writes, Step Functions' one execution per name, the provider's idempotency keys. The saga's unit
tests are only as good as these."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.orders import (
    CANCELLED, CANCELLING, PAYMENT_FAILED, QUEUED, RESERVED, Offer, Order, OrderPlaced, OrderStatus, WriteOutcome,
)
from chalicelib.domain.payments import (
    Payment, PaymentDeclined, PaymentProviderUnavailable, PaymentRefused, PaymentStatus,
)
from chalicelib.domain.products import Product
from tests.unit.fakes import (
    FakeClock, FakePaymentProvider, InMemoryIdempotencyStore, InMemoryOrderRepository, InMemoryOrderSagas,
    InMemoryProductRepository, SequentialIds,
)

APPLIED, ALREADY_APPLIED, STOCK_CHANGED = WriteOutcome.APPLIED, WriteOutcome.ALREADY_APPLIED, WriteOutcome.STOCK_CHANGED
OFFER = Offer(stock=5, price_cents=1200, currency="EUR", seller="seller-1", name="Mug")


class Tables:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.ids = SequentialIds()
        records = InMemoryIdempotencyStore()
        self.products = InMemoryProductRepository(records, self.clock)
        self.orders = InMemoryOrderRepository(self.products, records, self.clock)
        self.product_id = self.ids()
        self.products.add(Product(id=self.product_id, owner="s", name="Mug", description="", price_cents=1200,
                                  currency="EUR", stock=5, version=1, created_at=self.clock(),
                                  updated_at=self.clock()))

    def queued(self, quantity: int = 2) -> OrderPlaced:
        order_id = self.ids()
        now = self.clock()
        self.orders.add(Order(id=order_id, buyer="b", product_id=self.product_id, quantity=quantity,
                              status=QUEUED, created_at=now, updated_at=now, payment_method="pm_card_visa"))
        return OrderPlaced(order_id, "b", self.product_id, quantity)

    def stock(self) -> int:
        return self.products.get(self.product_id).stock


@pytest.fixture
def tables() -> Tables:
    return Tables()


def test_reserve_takes_the_stock_once_and_only_from_queued(tables):
    placed = tables.queued(2)

    assert tables.orders.reserve(placed, OFFER, tables.clock()) == APPLIED
    assert tables.orders.reserve(placed, OFFER, tables.clock()) == ALREADY_APPLIED

    order = tables.orders.get(placed.order_id)
    assert (order.status, order.stock_held, order.amount_cents, order.currency) == (RESERVED, True, 2400, "EUR")
    assert tables.stock() == 3 and tables.products.get(tables.product_id).version == 2


@pytest.mark.parametrize("offer, stock", [
    (Offer(5, 1100, "EUR", "seller-1", "Mug"), 5),  # the price changed since the read
    (Offer(5, 1200, "USD", "seller-1", "Mug"), 5),  # the currency changed
    (OFFER, 1),  # too little stock left at write time
])
def test_reserve_refuses_a_changed_offer_and_changes_nothing(tables, offer, stock):
    tables.products.items[tables.product_id] = dataclasses.replace(tables.products.get(tables.product_id), stock=stock)
    placed = tables.queued(2)

    assert tables.orders.reserve(placed, offer, tables.clock()) == STOCK_CHANGED

    assert tables.orders.get(placed.order_id).status == QUEUED and tables.stock() == stock


def test_reserve_of_an_order_withdrawn_by_the_api_is_already_applied(tables):
    placed = tables.queued()
    assert tables.orders.remove_queued(placed.order_id)

    assert tables.orders.reserve(placed, OFFER, tables.clock()) == ALREADY_APPLIED
    assert tables.stock() == 5


def test_end_waits_until_no_stock_and_no_money_is_held_and_happens_once(tables):
    placed = tables.queued()
    tables.orders.reserve(placed, OFFER, tables.clock())
    order_id = tables.orders.get(placed.order_id).id

    def end() -> WriteOutcome:
        return tables.orders.end(order_id, "b", expected={RESERVED}, status=PAYMENT_FAILED, reason="card_declined",
                                 now=tables.clock())

    assert end() == ALREADY_APPLIED  # stock held
    assert tables.orders.restock(tables.orders.get(order_id), tables.clock()) == APPLIED
    assert tables.orders.restock(tables.orders.get(order_id), tables.clock()) == ALREADY_APPLIED
    assert tables.stock() == 5
    tables.orders.record_payment(order_id, PaymentStatus.NONE, Payment(PaymentStatus.AUTHORIZED, "pi_1"),
                                 tables.clock())
    assert end() == ALREADY_APPLIED  # money held
    tables.orders.record_payment(order_id, PaymentStatus.AUTHORIZED, Payment(PaymentStatus.VOIDED), tables.clock())
    assert end() == APPLIED
    assert end() == ALREADY_APPLIED
    order = tables.orders.get(order_id)
    assert (order.status, order.reason, order.payment) == (PAYMENT_FAILED, "card_declined",
                                                           Payment(PaymentStatus.VOIDED, "pi_1"))
    assert [(e.status, e.reason) for e in order.history] == [
        (QUEUED, None), (RESERVED, None), (PAYMENT_FAILED, "card_declined")]


def test_end_only_from_the_expected_statuses(tables):
    placed = tables.queued()

    assert tables.orders.end(placed.order_id, "b", expected={CANCELLING}, status=CANCELLED, reason="x",
                             now=tables.clock()) == ALREADY_APPLIED
    assert tables.orders.get(placed.order_id).status == QUEUED


def test_a_payment_moves_only_from_the_expected_status(tables):
    placed = tables.queued()
    authorized = Payment(PaymentStatus.AUTHORIZED, "pi_1")

    assert tables.orders.record_payment(placed.order_id, PaymentStatus.AUTHORIZED, authorized,
                                        tables.clock()) == ALREADY_APPLIED
    assert tables.orders.record_payment(placed.order_id, PaymentStatus.NONE, authorized, tables.clock()) == APPLIED
    assert tables.orders.record_payment(placed.order_id, PaymentStatus.NONE, authorized,
                                        tables.clock()) == ALREADY_APPLIED


def test_a_move_only_from_its_source_and_a_notification_recorded_once(tables):
    placed = tables.queued()

    def cancel_from(source: OrderStatus) -> WriteOutcome:
        return tables.orders.move(placed.order_id, "b", source=source, to=CANCELLING, now=tables.clock())

    assert cancel_from(RESERVED) == ALREADY_APPLIED
    assert cancel_from(QUEUED) == APPLIED
    assert tables.orders.mark_notified(placed.order_id, tables.clock()) == APPLIED
    assert tables.orders.mark_notified(placed.order_id, tables.clock()) == ALREADY_APPLIED


def test_a_saga_name_is_started_once_and_a_failing_start_starts_nothing():
    sagas = InMemoryOrderSagas()
    sagas.failing = True
    with pytest.raises(DependencyUnavailable):
        sagas.start("o1", None)
    sagas.failing = False

    sagas.start("o1", "trace")
    sagas.start("o1", None)
    sagas.start_cancellation("o1", None)

    assert list(sagas.started) == ["o1", "o1-cancel"] and len(sagas.pending) == 2
    assert sagas.started["o1"].trace_header == "trace"


def test_the_provider_answers_a_repeated_key_with_its_first_answer_and_acts_once():
    provider = FakePaymentProvider()
    args = {"order_id": "o1", "amount_cents": 100, "currency": "EUR", "payment_method": "pm_card_visa"}

    reference = provider.authorize(**args, idempotency_key="k-auth")
    assert provider.authorize(**args, idempotency_key="k-auth") == reference
    provider.capture(reference, idempotency_key="k-cap")
    provider.capture(reference, idempotency_key="k-cap")

    assert provider.captures == [reference] and len(provider.intents) == 1
    assert (provider.calls["o1"], provider.requests["o1"]) == (2, 4)
    with pytest.raises(PaymentRefused):
        provider.void(reference, idempotency_key="k-void")  # captured: only a refund gives it back
    with pytest.raises(PaymentRefused):
        provider.authorize(**{**args, "amount_cents": 200}, idempotency_key="k-auth")  # the key's other body


@pytest.mark.parametrize("token, reason", [("pm_card_chargeDeclined", "card_declined"),
                                           ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")])
def test_the_provider_declines_its_test_tokens_the_same_way_every_time(token, reason):
    provider = FakePaymentProvider()
    args = {"order_id": "o1", "amount_cents": 100, "currency": "EUR", "payment_method": token}

    for _ in range(2):
        with pytest.raises(PaymentDeclined) as declined:
            provider.authorize(**args, idempotency_key="k")
        assert declined.value.reason == reason
    assert provider.calls["o1"] == 1


def test_the_unavailable_token_is_unavailable_every_time_and_leaves_nothing():
    provider = FakePaymentProvider()

    for _ in range(3):
        with pytest.raises(PaymentProviderUnavailable):
            provider.authorize(order_id="o1", amount_cents=100, currency="EUR", payment_method="pm_card_unavailable",
                               idempotency_key="k")

    assert provider.intents == {} and provider.unavailable["o1"] == 3 and provider.calls["o1"] == 0
