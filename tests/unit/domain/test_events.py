"""Domain events from a change's images, without AWS: what a committed write of a product or an
order means to the rest of the shop (API.md, Domain events)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.events import LOW_STOCK_THRESHOLD, EventSource, EventType, events_of
from chalicelib.domain.orders import OrderStatus
from tests.unit.stream_records import AT, BUYER, ORDER_ID, PRODUCT_ID, SELLER, change, order_image, product_image

TRACE_HEADER = "Root=1-6b045119-d652ce8931010b71dce080f7;Parent=53995c3f42cd8ad8;Sampled=1"


def products(old: dict[str, Any] | None, new: dict[str, Any] | None, change_id: str = "c-1") -> list[tuple[str, dict[str, Any]]]:
    return [(str(e.detail_type), dict(e.detail)) for e in events_of(EventSource.PRODUCTS, change(old, new, change_id))]


def types(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    return [t for t, _ in products(old, new)]


def orders(old: dict[str, Any] | None, new: dict[str, Any] | None, change_id: str = "c-1") -> list[tuple[str, dict[str, Any]]]:
    return [(str(e.detail_type), dict(e.detail)) for e in events_of(EventSource.ORDERS, change(old, new, change_id))]


# Products: created, updated, deleted


def test_a_new_product_is_product_created_with_every_field_named_as_changed():
    ((kind, detail),) = products(None, product_image())

    assert kind == "ProductCreated"
    assert detail == {"event_id": "c-1-ProductCreated", "product_id": PRODUCT_ID, "owner": SELLER, "name": "Mug",
                      "price_cents": 1200, "currency": "EUR", "stock": 10, "version": 1,
                      "changed": ["name", "description", "price_cents", "currency", "stock"],
                      "at": AT.isoformat()}


def test_an_update_is_product_updated_naming_only_the_fields_that_changed_and_carrying_the_new_values():
    ((kind, detail),) = products(product_image(), product_image(name="Cup", price_cents=1500, version=2))

    assert kind == "ProductUpdated"
    assert detail["changed"] == ["name", "price_cents"]
    assert (detail["name"], detail["price_cents"], detail["version"]) == ("Cup", 1500, 2)


def test_a_write_that_changes_none_of_the_products_fields_is_no_event():
    old = product_image()
    new = product_image(version=2, images={"i-1": {"status": "ready"}}, updated_at="2026-11-24T00:00:00+00:00")

    assert products(old, new) == []


def test_a_deleted_product_is_product_deleted_with_what_it_was():
    ((kind, detail),) = products(product_image(name="Cup", version=3), None)

    assert kind == "ProductDeleted"
    assert (detail["product_id"], detail["owner"], detail["name"], detail["version"]) == (PRODUCT_ID, SELLER, "Cup", 3)
    assert "changed" not in detail


def test_product_events_come_from_the_products_source():
    (event,) = events_of(EventSource.PRODUCTS, change(None, product_image()))

    assert event.source is EventSource.PRODUCTS and event.detail_type is EventType.PRODUCT_CREATED


# Products: StockLow, once per crossing below the threshold


def test_the_threshold_is_five():
    assert LOW_STOCK_THRESHOLD == 5


@pytest.mark.parametrize("before, after", [(5, 4), (10, 4), (5, 0), (100, 1)])
def test_stock_falling_from_five_or_more_to_below_five_is_stock_low(before, after):
    assert types(product_image(stock=before), product_image(stock=after)) == ["ProductUpdated", "StockLow"]


@pytest.mark.parametrize("before, after", [(4, 3), (1, 0), (10, 5), (6, 5), (4, 10), (3, 4)])
def test_stock_that_stays_on_one_side_or_rises_is_no_stock_low(before, after):
    assert "StockLow" not in types(product_image(stock=before), product_image(stock=after))


def test_stock_raised_above_the_threshold_and_falling_below_again_is_a_second_crossing():
    history = [3, 10, 4, 3]
    lows = [types(product_image(stock=a), product_image(stock=b)).count("StockLow")
            for a, b in zip(history, history[1:])]

    assert lows == [0, 1, 0]  # 3 -> 10: none, 10 -> 4: crossed, 4 -> 3: already below


def test_a_product_created_below_the_threshold_is_no_stock_low():
    assert types(None, product_image(stock=2)) == ["ProductCreated"]


def test_a_product_deleted_at_low_stock_is_no_stock_low():
    assert types(product_image(stock=2), None) == ["ProductDeleted"]


def test_stock_low_names_the_product_its_seller_its_stock_and_the_threshold():
    ((_, updated), (kind, detail)) = products(product_image(stock=7), product_image(stock=3, version=2))

    assert kind == "StockLow"
    assert {k: detail[k] for k in ("product_id", "owner", "name", "stock", "threshold", "version")} == {
        "product_id": PRODUCT_ID, "owner": SELLER, "name": "Mug", "stock": 3, "threshold": 5, "version": 2}
    assert updated["changed"] == ["stock"]


# Orders: only the moves into confirmed, cancelled and payment_failed


@pytest.mark.parametrize("old, new, kind", [
    (order_image("paid", "queued", "reserved"), order_image("confirmed", "queued", "reserved", "paid"),
     "OrderConfirmed"),
    (order_image("cancelling", "queued", "reserved"), order_image("cancelled", "queued", "reserved", "cancelling"),
     "OrderCancelled"),
    (order_image("reserved", "queued"), order_image("payment_failed", "queued", "reserved"), "PaymentFailed"),
])
def test_an_order_moving_into_confirmed_cancelled_or_payment_failed_is_one_event_of_that_move(old, new, kind):
    assert [k for k, _ in orders(old, new)] == [kind]


@pytest.mark.parametrize("old, new", [
    (None, order_image("queued")),  # the API's intake
    (order_image("queued"), order_image("reserved", "queued")),
    (order_image("reserved", "queued"), order_image("paid", "queued", "reserved")),
    (order_image("confirmed", "queued", "reserved", "paid"),
     order_image("confirmed", "queued", "reserved", "paid", notified=True)),  # the buyer e-mailed
    (order_image("confirmed", "queued", "reserved", "paid"),
     order_image("cancelling", "queued", "reserved", "paid", "confirmed")),
    (order_image("queued"), order_image("rejected", "queued", reason="out_of_stock")),
    (order_image("queued"), None),  # an intake the API withdrew
])
def test_an_order_write_that_is_not_such_a_move_is_no_event(old, new):
    assert orders(old, new) == []


@pytest.mark.parametrize("status, history", [
    ("confirmed", ("queued", "reserved", "paid")),
    ("cancelled", ("queued", "reserved", "cancelling")),
    ("payment_failed", ("queued", "reserved")),
])
def test_a_rewrite_of_an_order_in_the_same_status_is_no_second_event(status, history):
    before = order_image(status, *history)
    rewritten = order_image(status, *history, payment_status="refunded", updated_at="2026-11-24T00:00:00+00:00")

    assert orders(before, rewritten) == []


def test_a_cancelled_order_that_had_been_confirmed_says_so():
    old = order_image("cancelling", "queued", "reserved", "paid", "confirmed")
    new = order_image("cancelled", "queued", "reserved", "paid", "confirmed", "cancelling")

    ((kind, detail),) = orders(old, new)

    assert kind == "OrderCancelled" and detail["was_confirmed"] is True


def test_a_cancelled_order_that_was_never_confirmed_says_so():
    old = order_image("cancelling", "queued", "reserved")
    new = order_image("cancelled", "queued", "reserved", "cancelling")

    ((_, detail),) = orders(old, new)

    assert detail["was_confirmed"] is False


def test_only_a_cancellation_carries_was_confirmed():
    ((_, detail),) = orders(order_image("paid", "queued", "reserved"),
                            order_image("confirmed", "queued", "reserved", "paid"))

    assert "was_confirmed" not in detail


def test_an_order_event_carries_the_order_its_buyer_as_owner_and_what_was_bought_from_whom():
    (event,) = events_of(EventSource.ORDERS, change(order_image("paid", "queued", "reserved"),
                                                    order_image("confirmed", "queued", "reserved", "paid"),
                                                    change_id="c-9"))

    assert event.source is EventSource.ORDERS and event.detail_type is EventType.ORDER_CONFIRMED
    assert {k: event.detail[k] for k in ("event_id", "order_id", "owner", "buyer", "seller", "product_id",
                                         "product_name", "quantity", "amount_cents", "currency", "status", "at")} == {
        "event_id": "c-9-OrderConfirmed", "order_id": ORDER_ID, "owner": BUYER, "buyer": BUYER, "seller": SELLER,
        "product_id": PRODUCT_ID, "product_name": "Mug", "quantity": 2, "amount_cents": 2400, "currency": "EUR",
        "status": OrderStatus.CONFIRMED, "at": AT.isoformat()}
    assert "history" not in event.detail


# Every event: its id, its entity, its owner, its trace


def test_an_event_has_the_time_and_trace_of_the_write_it_comes_from():
    (event,) = events_of(EventSource.PRODUCTS, change(None, product_image(), trace_header=TRACE_HEADER))

    assert (event.at, event.trace_header) == (AT, TRACE_HEADER)


@pytest.mark.parametrize("source, old, new, entity", [
    (EventSource.PRODUCTS, None, product_image(), "product_id"),
    (EventSource.PRODUCTS, product_image(stock=5), product_image(stock=4), "product_id"),
    (EventSource.PRODUCTS, product_image(), None, "product_id"),
    (EventSource.ORDERS, order_image("paid"), order_image("confirmed", "paid"), "order_id"),
    (EventSource.ORDERS, order_image("cancelling"), order_image("cancelled", "cancelling"), "order_id"),
    (EventSource.ORDERS, order_image("reserved"), order_image("payment_failed", "reserved"), "order_id"),
])
def test_every_event_carries_its_entitys_id_its_owner_and_an_event_id(source, old, new, entity):
    events = events_of(source, change(old, new))

    assert events
    for event in events:
        assert event.detail[entity] == (PRODUCT_ID if entity == "product_id" else ORDER_ID)
        assert event.detail["owner"] == (SELLER if source is EventSource.PRODUCTS else BUYER)
        assert event.event_id == event.detail["event_id"] != ""


def test_the_same_change_delivered_again_makes_the_same_events_with_the_same_ids():
    first = events_of(EventSource.PRODUCTS, change(product_image(stock=5), product_image(stock=4), "c-7"))
    again = events_of(EventSource.PRODUCTS, change(product_image(stock=5), product_image(stock=4), "c-7"))

    assert [e.event_id for e in first] == [e.event_id for e in again] == ["c-7-ProductUpdated", "c-7-StockLow"]
    assert first == again


def test_two_changes_alike_in_content_make_events_with_different_ids():
    first = events_of(EventSource.PRODUCTS, change(product_image(stock=5), product_image(stock=4), "c-7"))
    second = events_of(EventSource.PRODUCTS, change(product_image(stock=5), product_image(stock=4), "c-8"))

    assert not {e.event_id for e in first} & {e.event_id for e in second}


# Poison: images the app would never have written


@pytest.mark.parametrize("image, problem", [
    (product_image(stock="ten"), "stock"),
    (product_image(stock=Decimal("1.5")), "stock"),
    (product_image(stock=True), "stock"),
    (product_image(price_cents=None), "price_cents"),
    (product_image(owner=""), "owner"),
    (product_image(name=7), "name"),
    ({k: v for k, v in product_image().items() if k != "version"}, "'version'"),
    ({k: v for k, v in product_image().items() if k != "id"}, "'id'"),
])
def test_a_product_image_the_app_would_not_write_is_poison_naming_the_problem(image, problem):
    for old, new in ((None, image), (product_image(), image), (image, product_image()), (image, None)):
        with pytest.raises(PoisonMessage, match=problem) as caught:
            events_of(EventSource.PRODUCTS, change(old, new))

        assert "not a product item" in str(caught.value)


@pytest.mark.parametrize("image, problem", [
    (order_image("shipped"), "shipped"),
    (order_image("confirmed", buyer=None), "buyer"),
    (order_image("confirmed", quantity="2"), "quantity"),
    (order_image("confirmed", amount_cents=Decimal("0.5")), "amount_cents"),
    (order_image("confirmed", history=[{"at": AT.isoformat()}]), "'status'"),
    (order_image("confirmed", history=[{"status": "lost", "at": AT.isoformat()}]), "lost"),
    ({k: v for k, v in order_image("confirmed").items() if k != "product_id"}, "'product_id'"),
])
def test_an_order_image_the_app_would_not_write_is_poison_naming_the_problem(image, problem):
    for old, new in ((order_image("paid"), image), (image, order_image("confirmed", "paid"))):
        with pytest.raises(PoisonMessage, match=problem) as caught:
            events_of(EventSource.ORDERS, change(old, new))

        assert "not an order item" in str(caught.value)


def test_a_change_with_neither_image_is_poison():
    with pytest.raises(PoisonMessage, match="neither an old nor a new image"):
        events_of(EventSource.PRODUCTS, change(None, None))
