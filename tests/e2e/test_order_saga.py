"""The order saga on the running stack, as a buyer and an operator meet it: each test token of
API.md ends its order as the contract says, with API.md's invariants checked against the payment
stand-in's own record; a cancel of a confirmed order refunds it; the buyer is e-mailed; the saga's
steps are Lambda invocations in the trace of the consumer that started them."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
import requests

from devstack.payments import LOCAL_API_KEY
from tests.support.xray import wait_for_segment

pytestmark = pytest.mark.timeout(300)

SETTLED = frozenset({"confirmed", "rejected", "payment_failed", "cancelled", "failed"})
EXPECTED = {  # token -> (status, reason, payment status)
    "pm_card_visa": ("confirmed", None, "captured"),
    "pm_card_chargeDeclined": ("payment_failed", "card_declined", "failed"),
    "pm_card_chargeDeclinedInsufficientFunds": ("payment_failed", "insufficient_funds", "failed"),
    "pm_card_unavailable": ("payment_failed", "payment_provider_unavailable", "none"),
}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _product(stack: Any, stock: int) -> str:
    seller = stack.token(f"seller-{uuid.uuid4().hex[:8]}")
    created = requests.post(f"{stack.endpoints['api']}/products", headers=_auth(seller), timeout=10,
                            json={"name": "Kettle", "price_cents": 3900, "currency": "EUR", "stock": stock})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _place(stack: Any, buyer: str, product_id: str, payment_method: str, quantity: int = 1) -> str:
    placed = requests.post(f"{stack.endpoints['api']}/orders", headers=_auth(buyer), timeout=10,
                           json={"product_id": product_id, "quantity": quantity, "payment_method": payment_method})
    assert placed.status_code == 202, placed.text
    return str(placed.json()["order_id"])


def _settled(stack: Any, buyer: str, order_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = requests.get(f"{stack.endpoints['api']}/orders/{order_id}", headers=_auth(buyer), timeout=10).json()
        if order["status"] in SETTLED:
            return dict(order)
        time.sleep(0.3)
    raise AssertionError(f"order {order_id} not settled after {timeout} s: {order}")


def _intents(stack: Any) -> list[dict[str, Any]]:
    listed = requests.get(f"{stack.endpoints['payments']}/v1/payment_intents?limit=100",
                          headers=_auth(LOCAL_API_KEY), timeout=10)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def _stock(stack: Any, product_id: str) -> int:
    return int(requests.get(f"{stack.endpoints['api']}/products/{product_id}", timeout=10).json()["stock"])


def test_each_test_token_ends_its_order_as_the_contract_says_and_the_invariants_hold(stack):
    product_id, buyer = _product(stack, stock=10), stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    placed = {_place(stack, buyer, product_id, token, quantity=2): token for token in EXPECTED}

    orders = {order_id: _settled(stack, buyer, order_id) for order_id in placed}

    for order_id, token in placed.items():
        status, reason, payment = EXPECTED[token]
        order = orders[order_id]
        assert (order["status"], order.get("reason"), order["payment"]["status"]) == (status, reason, payment), token
        assert order["amount_cents"] == 2 * 3900 and order["currency"] == "EUR"
        history = [entry["status"] for entry in order["history"]]
        assert history[:2] == ["queued", "reserved"] and history[-1] == status
        assert sum(entry in SETTLED for entry in history) == 1  # exactly one ending
    confirmed = [o for o in orders.values() if o["status"] == "confirmed"]
    # Stock conserved: what is left plus what confirmed orders hold is what there was.
    assert _stock(stack, product_id) + sum(o["quantity"] for o in confirmed) == 10
    # The provider's own record: a capture only for the confirmed order, and exactly one.
    intents = {i["metadata"]["order_id"]: i for i in _intents(stack) if i["metadata"].get("order_id") in placed}
    captured = {order_id for order_id, intent in intents.items() if intent["status"] == "succeeded"}
    assert captured == {o["order_id"] for o in confirmed}
    calls = requests.get(f"{stack.endpoints['payments']}/_devstack/calls", timeout=10).json()["orders"]
    assert all(calls[o["order_id"]]["total"] == 2 for o in confirmed)  # authorize and capture, nothing more
    assert calls[next(i for i, t in placed.items() if t == "pm_card_unavailable")]["total"] > 1  # retried


def test_the_buyer_is_emailed_and_a_cancel_of_the_confirmed_order_refunds_it(stack):
    product_id, buyer = _product(stack, stock=3), stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    order_id = _place(stack, buyer, product_id, "pm_card_visa")
    assert _settled(stack, buyer, order_id)["status"] == "confirmed"
    deadline, mail = time.monotonic() + 30, []
    while not mail and time.monotonic() < deadline:
        mail = [m for m in requests.get(stack.endpoints["mailbox"], timeout=10).json() if order_id in m["subject"]]
        time.sleep(0.3)
    assert mail and order_id in mail[0]["text"] and mail[0]["to"][0].endswith("@example.com")

    cancelling = requests.post(f"{stack.endpoints['api']}/orders/{order_id}/cancel", headers=_auth(buyer), timeout=10)
    assert cancelling.status_code == 202 and cancelling.json()["status"] == "cancelling"
    order = _settled(stack, buyer, order_id)

    assert (order["status"], order["reason"], order["payment"]["status"]) == (
        "cancelled", "cancelled_by_buyer", "refunded")
    assert _stock(stack, product_id) == 3
    again = requests.post(f"{stack.endpoints['api']}/orders/{order_id}/cancel", headers=_auth(buyer), timeout=10)
    assert again.status_code == 409
    listed = requests.get(f"{stack.endpoints['api']}/orders?status=cancelled", headers=_auth(buyer), timeout=10)
    assert [o["order_id"] for o in listed.json()["items"]] == [order_id]


def test_the_sagas_steps_are_in_the_trace_of_the_consumer_that_started_them(stack):
    product_id, buyer = _product(stack, stock=3), stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    order_id = _place(stack, buyer, product_id, "pm_card_visa")
    assert _settled(stack, buyer, order_id)["status"] == "confirmed"

    xray = boto3.client("xray", endpoint_url=stack.endpoints["aws_endpoint"], region_name=stack.endpoints["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    since = datetime.now(timezone.utc) - timedelta(minutes=2)
    consumer = wait_for_segment(
        xray, since, lambda d: d["name"].endswith("consume_orders") and order_id in json.dumps(d), timeout=60)
    assert consumer is not None
    steps: set[str] = set()
    deadline = time.monotonic() + 30
    while not {"order_saga_payment", "order_saga_order", "order_saga_notify"} <= steps and time.monotonic() < deadline:
        segments = [json.loads(s["Document"]) for t in xray.batch_get_traces(TraceIds=[consumer["trace_id"]])["Traces"]
                    for s in t["Segments"]]
        steps = {d["name"].rsplit("-", 1)[-1].removeprefix("## ") for d in segments if order_id in json.dumps(d)}
        time.sleep(0.5)
    assert {"order_saga_payment", "order_saga_order", "order_saga_notify"} <= steps
