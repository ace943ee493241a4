"""Order rules without AWS: the body of POST /orders, the queue message, and the decision."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.commands import PlaceOrder, parse_command
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.orders import OUT_OF_STOCK, PRODUCT_NOT_FOUND, Offer, OrderPlaced, PoisonMessage, decide

PRODUCT_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
ORDER_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAW"
PLACED = OrderPlaced(order_id=ORDER_ID, buyer="buyer-sub", product_id=PRODUCT_ID, quantity=3)
CARD = "pm_card_visa"


# The body of POST /orders


@pytest.mark.parametrize("quantity", [1, 100])
def test_an_order_body_takes_a_product_id_a_quantity_from_1_to_100_and_a_payment_method(quantity):
    command = parse_command(PlaceOrder, {"product_id": PRODUCT_ID, "quantity": quantity, "payment_method": CARD})

    assert (command.product_id, command.quantity, command.payment_method) == (PRODUCT_ID, quantity, CARD)


@pytest.mark.parametrize("body, field", [
    ({"quantity": 1, "payment_method": CARD}, "product_id"),
    ({"product_id": PRODUCT_ID, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": 1}, "payment_method"),
    ({"product_id": "not-an-id", "quantity": 1, "payment_method": CARD}, "product_id"),
    ({"product_id": PRODUCT_ID + "\n", "quantity": 1, "payment_method": CARD}, "product_id"),
    ({"product_id": PRODUCT_ID.lower(), "quantity": 1, "payment_method": CARD}, "product_id"),
    ({"product_id": 7, "quantity": 1, "payment_method": CARD}, "product_id"),
    ({"product_id": PRODUCT_ID, "quantity": 0, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": 101, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": -1, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": "1", "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": True, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": 1.0, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": None, "payment_method": CARD}, "quantity"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": "card_visa"}, "payment_method"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": "pm_"}, "payment_method"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": "pm_card visa"}, "payment_method"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": "pm_card_visa\n"}, "payment_method"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": "pm_" + "a" * 121}, "payment_method"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": 4242}, "payment_method"),
    ({"product_id": PRODUCT_ID, "quantity": 1, "payment_method": CARD, "price_cents": 0}, "price_cents"),
    ([PRODUCT_ID, 1], "body"),
])
def test_a_bad_order_body_is_refused_naming_the_field(body, field):
    with pytest.raises(InvalidInput) as caught:
        parse_command(PlaceOrder, body)

    assert caught.value.field == field


# The message on the orders queue


def test_a_message_the_api_sends_reads_back_as_the_same_order():
    sent = json.loads(json.dumps(PLACED.to_message()))

    assert OrderPlaced.from_message(sent) == PLACED


def test_fields_the_consumer_does_not_know_are_ignored():
    assert OrderPlaced.from_message({**PLACED.to_message(), "coupon": "x"}) == PLACED


def _with(**changes: Any) -> dict[str, Any]:
    message = PLACED.to_message()
    for key, value in changes.items():
        if value is _ABSENT:
            del message[key]
        else:
            message[key] = value
    return message


_ABSENT = object()


@pytest.mark.parametrize("message", [
    None, "OrderPlaced", 42, [PLACED.to_message()],
    _with(type="OrderCancelled"), _with(type=_ABSENT),
    _with(version=2), _with(version="1"), _with(version=True), _with(version=1.0), _with(version=_ABSENT),
    _with(order_id=_ABSENT), _with(order_id="short"), _with(order_id=ORDER_ID.lower()), _with(order_id=7),
    _with(product_id=_ABSENT), _with(product_id="../../etc"), _with(product_id=None),
    _with(buyer=_ABSENT), _with(buyer=""), _with(buyer="b" * 129), _with(buyer=5),
    _with(quantity=_ABSENT), _with(quantity=0), _with(quantity=101), _with(quantity="3"),
    _with(quantity=True), _with(quantity=3.0), _with(quantity=None),
], ids=lambda m: json.dumps(m)[-60:])
def test_a_malformed_message_is_poison(message):
    with pytest.raises(PoisonMessage):
        OrderPlaced.from_message(message)


# The decision


def test_enough_stock_reserves():
    assert decide(Offer(stock=3, price_cents=1200, currency="EUR", seller="seller-1", name="Mug"), quantity=3) is None


def test_too_little_stock_rejects_as_out_of_stock():
    assert decide(Offer(stock=2, price_cents=1200, currency="EUR", seller="seller-1", name="Mug"), quantity=3) == OUT_OF_STOCK
    assert decide(Offer(stock=0, price_cents=1200, currency="EUR", seller="seller-1", name="Mug"), quantity=1) == OUT_OF_STOCK


def test_no_product_rejects_as_product_not_found():
    assert decide(None, quantity=1) == PRODUCT_NOT_FOUND


def test_the_amount_is_the_price_of_the_offer_times_the_quantity():
    assert Offer(stock=9, price_cents=1250, currency="EUR", seller="seller-1", name="Mug").amount_for(3) == 3750
