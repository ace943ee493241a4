"""Sale facts and the seller's report, without AWS: what an order counts, read from its events (the
live path) or from the order itself (the rebuild), and how a seller's rows add up."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.events import EventSource, events_of
from chalicelib.domain.orders import HistoryEntry, Order, OrderStatus
from chalicelib.domain.sales import ProductSales, SaleFact, fact_of_event, facts_of_order, report
from tests.unit.stream_records import AT, BUYER, ORDER_ID, PRODUCT_ID, SELLER, change, image_of_order

CONFIRMED_DETAIL: dict[str, Any] = {
    "event_id": "c-1-OrderConfirmed", "order_id": ORDER_ID, "owner": BUYER, "buyer": BUYER, "seller": SELLER,
    "product_id": PRODUCT_ID, "product_name": "Mug", "quantity": 2, "amount_cents": 2400, "currency": "EUR",
    "status": "confirmed", "at": AT.isoformat(),
}


def order_through(*statuses: OrderStatus, quantity: int = 2, seller: str | None = SELLER) -> list[Order]:
    """The order after each of its writes: queued, then one status a minute; reserved fixes the
    amount (1200 cents a unit), the seller and the product's name."""
    order = Order(id=ORDER_ID, buyer=BUYER, product_id=PRODUCT_ID, quantity=quantity, status=OrderStatus.QUEUED,
                  created_at=AT, updated_at=AT, history=(HistoryEntry(OrderStatus.QUEUED, AT),))
    written = [order]
    for minutes, status in enumerate(statuses, start=1):
        now = AT + timedelta(minutes=minutes)
        changes: dict[str, Any] = {}
        if status is OrderStatus.RESERVED:
            changes = {"amount_cents": 1200 * quantity, "currency": "EUR", "seller": seller, "product_name": "Mug"}
        order = dataclasses.replace(order, status=status, updated_at=now,
                                    history=(*order.history, HistoryEntry(status, now)), **changes)
        written.append(order)
    return written


def live_facts(written: list[Order]) -> list[SaleFact]:
    """The facts the sales read model is given for these writes: each write's stream record, its
    events, and each event's detail as the bus delivers it (JSON)."""
    facts = []
    for number, (old, new) in enumerate(zip([None, *written], written), start=1):
        record = change(None if old is None else image_of_order(old), image_of_order(new), change_id=f"c-{number}",
                        at=new.updated_at)
        for event in events_of(EventSource.ORDERS, record):
            if event.detail_type in ("OrderConfirmed", "OrderCancelled"):
                fact = fact_of_event(str(event.detail_type), json.loads(json.dumps(event.detail, default=str)))
                if fact is not None:
                    facts.append(fact)
    return facts


Q, R, P, C = OrderStatus.QUEUED, OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.CONFIRMED
CANCELLING, CANCELLED, PAYMENT_FAILED = OrderStatus.CANCELLING, OrderStatus.CANCELLED, OrderStatus.PAYMENT_FAILED


# The live path: a fact per event


def test_a_confirmed_order_counts_one_order_its_units_and_its_amount_for_its_seller_and_product():
    fact = fact_of_event("OrderConfirmed", CONFIRMED_DETAIL)

    assert fact == SaleFact(key=f"order#{ORDER_ID}#confirmed", seller=SELLER, product_id=PRODUCT_ID,
                            product_name="Mug", orders=1, units=2, revenue_cents=2400, at=AT)


def test_a_confirmed_order_later_cancelled_takes_back_what_it_counted_under_a_key_of_its_own():
    fact = fact_of_event("OrderCancelled", {**CONFIRMED_DETAIL, "status": "cancelled", "was_confirmed": True})

    assert fact is not None
    assert (fact.key, fact.orders, fact.units, fact.revenue_cents) == (f"order#{ORDER_ID}#cancelled", -1, -2, -2400)


@pytest.mark.parametrize("was_confirmed", [False, None, "true"])
def test_a_cancelled_order_that_was_never_confirmed_counts_nothing(was_confirmed):
    detail = {**CONFIRMED_DETAIL, "status": "cancelled", "was_confirmed": was_confirmed}

    assert fact_of_event("OrderCancelled", detail) is None


@pytest.mark.parametrize("detail_type", ["PaymentFailed", "ProductUpdated", "StockLow", "OrderShipped"])
def test_an_event_the_sales_model_does_not_count_is_poison(detail_type):
    with pytest.raises(PoisonMessage, match=detail_type):
        fact_of_event(detail_type, CONFIRMED_DETAIL)


@pytest.mark.parametrize("changes", [
    {"seller": None}, {"seller": ""}, {"product_name": None}, {"order_id": 7}, {"quantity": "2"},
    {"quantity": 2.0}, {"amount_cents": None}, {"at": "yesterday"},
])
def test_an_order_event_without_what_a_sale_needs_is_poison(changes):
    with pytest.raises(PoisonMessage, match="without what the sales read model needs"):
        fact_of_event("OrderConfirmed", {**CONFIRMED_DETAIL, **changes})


@pytest.mark.parametrize("missing", ["order_id", "seller", "product_id", "product_name", "quantity",
                                     "amount_cents", "at"])
def test_an_order_event_missing_a_field_is_poison_naming_it(missing):
    detail = {k: v for k, v in CONFIRMED_DETAIL.items() if k != missing}

    with pytest.raises(PoisonMessage, match=f"'{missing}'"):
        fact_of_event("OrderConfirmed", detail)


# The rebuild: the same facts, read from the orders


@pytest.mark.parametrize("statuses, counted", [
    ((R, P, C), [1]),
    ((R, P, C, CANCELLING, CANCELLED), [1, -1]),  # confirmed, then cancelled and refunded
    ((R, CANCELLING, CANCELLED), []),  # cancelled before it was confirmed
    ((CANCELLING, CANCELLED), []),  # cancelled while queued
    ((R, P, C, CANCELLING), [1]),  # cancelling after it was confirmed: still counts until cancelled
    ((R, PAYMENT_FAILED), []),
    ((OrderStatus.REJECTED,), []),
    ((R,), []),
    ((R, P), []),
])
def test_the_rebuilds_facts_of_an_order_are_the_facts_its_events_gave_the_live_model(statuses, counted):
    written = order_through(*statuses)

    rebuilt = facts_of_order(written[-1])

    assert rebuilt == live_facts(written)
    assert [f.orders for f in rebuilt] == counted


def test_an_order_counts_its_amount_and_units_as_reserved():
    (fact,) = facts_of_order(order_through(R, P, C, quantity=3)[-1])

    assert (fact.seller, fact.product_id, fact.product_name, fact.units, fact.revenue_cents) == (
        SELLER, PRODUCT_ID, "Mug", 3, 3600)
    assert fact.at == AT + timedelta(minutes=3)  # when it was confirmed


def test_an_order_reserved_before_orders_kept_their_seller_counts_nothing_in_a_rebuild():
    assert facts_of_order(order_through(R, P, C, seller=None)[-1]) == []


# The report


def _row(product_id: str, orders: int, units: int, revenue: int, as_of: datetime | None = AT) -> ProductSales:
    return ProductSales(product_id, f"name of {product_id}", orders, units, revenue, as_of)


def test_the_report_adds_up_the_sellers_rows_best_sellers_by_revenue_first():
    rows = [_row("p-1", 1, 1, 500), _row("p-2", 3, 4, 4800), _row("p-3", 2, 2, 1000)]

    sales = report(rows)

    assert [p.product_id for p in sales.products] == ["p-2", "p-3", "p-1"]
    assert (sales.orders, sales.units, sales.revenue_cents) == (6, 7, 6300)


def test_rows_of_equal_revenue_are_ordered_by_units_then_by_product_id():
    rows = [_row("p-b", 1, 1, 1000), _row("p-c", 1, 2, 1000), _row("p-a", 1, 1, 1000)]

    assert [p.product_id for p in report(rows).products] == ["p-c", "p-a", "p-b"]


def test_the_report_is_as_of_its_newest_row():
    rows = [_row("p-1", 1, 1, 500, AT), _row("p-2", 1, 1, 500, AT + timedelta(hours=1)), _row("p-3", 0, 0, 0, None)]

    assert report(rows).as_of == AT + timedelta(hours=1)


def test_a_seller_without_sales_has_zero_totals_no_products_and_no_as_of():
    sales = report([])

    assert (sales.orders, sales.units, sales.revenue_cents, sales.products, sales.as_of) == (0, 0, 0, (), None)


def test_a_product_whose_sales_were_all_cancelled_stays_listed_at_zero():
    sales = report([_row("p-1", 0, 0, 0), _row("p-2", 1, 2, 2400)])

    assert [(p.product_id, p.orders) for p in sales.products] == [("p-2", 1), ("p-1", 0)]
    assert sales.orders == 1
