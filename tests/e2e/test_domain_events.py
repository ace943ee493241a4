"""Domain events on the running stack, as a seller and an operator meet them: a confirmed order
shows in the seller's sales without anyone but the stack delivering it (the tables' streams read
as Lambda's mappings read them, the bus's rules matched by moto, the read side's queues polled);
a stock falling below 5 e-mails the seller once; `make rebuild-sales` gives the live numbers
back; the read side's work is linked to the trace of the write that caused it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
import requests

from tests.support.xray import wait_for_segment

pytestmark = pytest.mark.timeout(300)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _user(stack: Any, role: str) -> str:
    return str(stack.token(f"{role}-{uuid.uuid4().hex[:8]}"))


def _product(stack: Any, seller: str, stock: int, name: str = "Kettle") -> str:
    created = requests.post(f"{stack.endpoints['api']}/products", headers=_auth(seller), timeout=10,
                            json={"name": name, "price_cents": 3900, "currency": "EUR", "stock": stock})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _confirmed(stack: Any, buyer: str, product_id: str, quantity: int) -> str:
    placed = requests.post(f"{stack.endpoints['api']}/orders", headers=_auth(buyer), timeout=10,
                           json={"product_id": product_id, "quantity": quantity, "payment_method": "pm_card_visa"})
    assert placed.status_code == 202, placed.text
    order_id = str(placed.json()["order_id"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        order = requests.get(f"{stack.endpoints['api']}/orders/{order_id}", headers=_auth(buyer), timeout=10).json()
        if order["status"] == "confirmed":
            return order_id
        assert order["status"] in ("queued", "reserved", "paid"), order
        time.sleep(0.3)
    raise AssertionError(f"order {order_id} not confirmed")


def _sales(stack: Any, seller: str) -> dict[str, Any]:
    response = requests.get(f"{stack.endpoints['api']}/sellers/me/sales", headers=_auth(seller), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _sales_when(stack: Any, seller: str, orders: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (sales := _sales(stack, seller))["totals"]["orders"] != orders:
        assert time.monotonic() < deadline, f"the sales never counted {orders} orders: {sales}"
        time.sleep(0.3)
    return sales


def test_confirmed_orders_reach_their_sellers_sales_and_a_rebuild_gives_the_same_numbers(stack):
    seller, buyer = _user(stack, "seller"), _user(stack, "buyer")
    kettle, mug = _product(stack, seller, 20, "Kettle"), _product(stack, seller, 20, "Mug")
    for product_id, quantity in ((kettle, 1), (kettle, 2), (mug, 3)):
        _confirmed(stack, buyer, product_id, quantity)

    live = _sales_when(stack, seller, 3)

    assert live["totals"] == {"orders": 3, "units": 6, "revenue_cents": 6 * 3900}
    # Best revenue first; the two tie on revenue and units, so the product id decides.
    assert live["products"] == sorted([
        {"product_id": kettle, "name": "Kettle", "orders": 2, "units": 3, "revenue_cents": 3 * 3900},
        {"product_id": mug, "name": "Mug", "orders": 1, "units": 3, "revenue_cents": 3 * 3900},
    ], key=lambda row: row["product_id"])
    assert _sales(stack, buyer)["products"] == []

    rebuilt = stack.devstack("invoke", "rebuild_sales")  # what `make rebuild-sales` runs

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["result"]["facts"] >= 3
    again = _sales(stack, seller)
    assert (again["totals"], again["products"]) == (live["totals"], live["products"])


def test_stock_falling_below_five_emails_its_seller_once_naming_the_product(stack):
    seller, buyer = _user(stack, "seller"), _user(stack, "buyer")
    product_id = _product(stack, seller, 6, "Teapot")

    _confirmed(stack, buyer, product_id, 2)  # 6 -> 4
    _confirmed(stack, buyer, product_id, 1)  # 4 -> 3: no new crossing

    def low_stock_mail() -> list[dict[str, Any]]:
        return [m for m in requests.get(stack.endpoints["mailbox"], timeout=10).json()
                if m["subject"].startswith("Low stock") and product_id in m["text"]]

    deadline, mail = time.monotonic() + 60, []
    while not mail and time.monotonic() < deadline:
        mail = low_stock_mail()
        time.sleep(0.3)
    time.sleep(3)  # a second message would be a bug: give it time to show
    mail = low_stock_mail()
    assert len(mail) == 1, mail
    assert mail[0]["subject"] == "Low stock: Teapot" and "4 units left" in mail[0]["text"]


def test_the_read_side_is_linked_to_the_trace_of_the_write_that_caused_it(stack):
    seller, buyer = _user(stack, "seller"), _user(stack, "buyer")
    product_id = _product(stack, seller, 20)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    order_id = _confirmed(stack, buyer, product_id, 1)
    _sales_when(stack, seller, 1)

    xray = boto3.client("xray", endpoint_url=stack.endpoints["aws_endpoint"], region_name=stack.endpoints["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    confirming = wait_for_segment(
        xray, since, lambda d: d["name"].endswith("order_saga_order") and order_id in json.dumps(d)
        and "confirm" in json.dumps(d), timeout=60)
    projecting = wait_for_segment(
        xray, since, lambda d: d["name"].endswith("project_sales") and order_id in json.dumps(d), timeout=60)

    assert confirming is not None and projecting is not None
    # The confirmation's write kept its trace header; the event carried it; the SQS-triggered
    # invocation is linked to that trace, as Lambda links a message's consumer to its sender.
    links = [link["trace_id"] for link in projecting.get("links", [])]
    assert confirming["trace_id"] in links or projecting["trace_id"] == confirming["trace_id"], (links, confirming)
