"""Orders on the running stack, as a buyer and an operator meet them: a burst levelled through the
queue without overselling (each reserved order then paid for by its saga), a poison message dead-lettered while good orders flow, the consumer's
trace linked to the request's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
import requests

from chalicelib.config import orders_max_concurrency
from devstack.chalice_config import StageConfig
from tests.support.xray import wait_for_segment

pytestmark = pytest.mark.timeout(240)

SETTLED = frozenset({"confirmed", "rejected", "payment_failed", "cancelled", "failed"})


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _client(stack: Any, service: str) -> Any:
    return boto3.client(service, endpoint_url=stack.endpoints["aws_endpoint"], region_name=stack.endpoints["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _product(stack: Any, stock: int) -> str:
    seller = stack.token(f"seller-{uuid.uuid4().hex[:8]}")
    created = requests.post(f"{stack.endpoints['api']}/products", headers=_auth(seller), timeout=10,
                            json={"name": "Lamp", "price_cents": 5000, "currency": "EUR", "stock": stock})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _stock(stack: Any, product_id: str) -> int:
    return requests.get(f"{stack.endpoints['api']}/products/{product_id}", timeout=10).json()["stock"]


def _wait_until_terminal(stack: Any, token: str, order_ids: list[str], timeout: float = 90) -> dict[str, dict]:
    """Each order as GET /orders/{id} shows it once it is settled: confirmed (its saga has run) or ended."""
    api, pending, done = stack.endpoints["api"], set(order_ids), {}
    deadline = time.monotonic() + timeout
    with requests.Session() as http:
        while pending and time.monotonic() < deadline:
            for order_id in sorted(pending):
                order = http.get(f"{api}/orders/{order_id}", headers=_auth(token), timeout=10).json()
                if order["status"] in SETTLED:
                    done[order_id] = order
                    pending.discard(order_id)
            if pending:
                time.sleep(0.3)
    assert not pending, f"{len(pending)} orders not settled after {timeout} s"
    return done


def test_a_burst_is_levelled_through_the_queue_and_never_oversells(stack):
    stock, orders, clients = 20, 60, 8
    product_id = _product(stack, stock)
    buyer = stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    api = stack.endpoints["api"]
    accepted: list[str] = []
    refused: list[requests.Response] = []
    lowest_stock_seen = [stock]
    burst_over = threading.Event()

    def client(count: int) -> None:
        with requests.Session() as http:
            for _ in range(count):
                response = http.post(f"{api}/orders", headers=_auth(buyer), timeout=30,
                                     json={"product_id": product_id, "quantity": 1, "payment_method": "pm_card_visa"})
                (accepted.append(response.json()["order_id"]) if response.status_code == 202
                 else refused.append(response))

    def watch_the_stock() -> None:
        while not burst_over.is_set():
            lowest_stock_seen[0] = min(lowest_stock_seen[0], _stock(stack, product_id))

    watcher = threading.Thread(target=watch_the_stock)
    watcher.start()
    threads = [threading.Thread(target=client, args=(orders // clients + (i < orders % clients),))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert refused == [] and len(accepted) == orders
    outcomes = _wait_until_terminal(stack, buyer, accepted)
    burst_over.set()
    watcher.join()

    assert Counter(o["status"] for o in outcomes.values()) == {"confirmed": stock, "rejected": orders - stock}
    assert {o.get("reason") for o in outcomes.values() if o["status"] == "rejected"} == {"out_of_stock"}
    assert _stock(stack, product_id) == 0
    assert lowest_stock_seen[0] >= 0
    consumer = requests.get(f"{stack.endpoints['trace_viewer']}/api/stats", timeout=10).json()["functions"][
        "consume_orders"]
    cap = orders_max_concurrency(StageConfig("dev").environment())
    assert 1 <= consumer["max_in_flight"] <= cap
    assert consumer["records_delivered"] >= orders


def test_a_poison_message_ends_in_the_dead_letter_queue_and_its_consumer_while_good_orders_flow(stack):
    """The poison is retried maxReceiveCount times, moved to the DLQ, and taken by the DLQ's
    consumer, which logs it whole and acknowledges it (it is not an order: nothing to end)."""
    queues = stack.endpoints["queues"]

    def dead_letters_taken() -> int:
        stats = requests.get(f"{stack.endpoints['trace_viewer']}/api/stats", timeout=10).json()["functions"]
        return int(stats.get("orders_dead_letter", {}).get("records_delivered", 0))

    taken_before = dead_letters_taken()
    stack.aws("sqs", "send-message", "--queue-url", queues["OrdersQueue"],
              "--message-body", '{"type": "OrderPlaced", "version": 1, "quantity": "lots"}')
    product_id = _product(stack, stock=5)
    buyer = stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    placed = []
    for _ in range(3):
        response = requests.post(f"{stack.endpoints['api']}/orders", headers=_auth(buyer), timeout=10,
                                 json={"product_id": product_id, "quantity": 1, "payment_method": "pm_card_visa"})
        assert response.status_code == 202
        placed.append(response.json()["order_id"])

    outcomes = _wait_until_terminal(stack, buyer, placed)

    assert {o["status"] for o in outcomes.values()} == {"confirmed"}
    deadline = time.monotonic() + 120
    while dead_letters_taken() == taken_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dead_letters_taken() > taken_before, "the poison message never reached the dead-letter consumer"
    sqs = _client(stack, "sqs")
    depth = sqs.get_queue_attributes(QueueUrl=queues["OrdersQueueDeadLetterQueue"],
                                     AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert depth["ApproximateNumberOfMessages"] == "0"  # acknowledged, not retried for ever
    assert _stock(stack, product_id) == 2


def test_the_order_consumer_runs_in_its_own_trace_linked_to_the_request(stack):
    """As Lambda does with an SQS trigger: a new trace per invocation, linked to the sender's."""
    product_id = _product(stack, stock=5)
    buyer = stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    response = requests.post(f"{stack.endpoints['api']}/orders", headers=_auth(buyer), timeout=10,
                             json={"product_id": product_id, "quantity": 1, "payment_method": "pm_card_visa"})
    assert response.status_code == 202
    order_id = response.json()["order_id"]
    trace_id = response.headers["X-Amzn-Trace-Id"].split("=", 1)[1]

    xray = _client(stack, "xray")
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    consumer = wait_for_segment(
        xray, since, lambda d: d["name"].endswith("consume_orders") and order_id in json.dumps(d), timeout=60)
    assert consumer is not None, "no consumer trace carries the order's annotation"
    request = [json.loads(s["Document"]) for t in xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
               for s in t["Segments"]]

    def ids_of(entity: dict) -> set[str]:
        return {entity["id"]}.union(*(ids_of(s) for s in entity.get("subsegments", [])))

    assert consumer["trace_id"] != trace_id
    [link] = consumer["links"]
    assert link["trace_id"] == trace_id and link["id"] in set().union(*map(ids_of, request))  # its SendMessage
    [handler] = [s for s in consumer["subsegments"] if s["name"] == "## consume_orders"]
    [record] = [s for s in handler["subsegments"] if s["name"] == "## consume_orders record"]
    assert record["annotations"]["order_id"] == order_id
    assert record["annotations"]["product_id"] == product_id
    assert record["annotations"]["outcome"] == "reserved"  # and its saga started
    assert order_id in json.dumps(request)  # the request's own annotation
