"""orders_dead_letter against moto, invoked as Lambda invokes it with SQS events built from messages
received from the real orders DLQ: an order whose message failed every delivery reaches exactly
one ending (or is finished as the consumer would have); poison is logged whole and acknowledged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.ids import new_id
from chalicelib.domain.orders import OrderPlaced
from tests.integration.app.helpers import body_of
from tests.integration.app.orders_helpers import (
    OrdersQueue, executions_named, new_product, place, read_order, saga_starts_unavailable, stock_of,
)
from tests.support.sqs import LambdaQueue

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def dead_letters(stack) -> Iterator[LambdaQueue]:
    queue = LambdaQueue(stack.client("sqs"), stack.provisioned.env()["ORDERS_QUEUE_DEAD_LETTER_QUEUE"])
    queue.drain()
    yield queue
    queue.drain()


@pytest.fixture
def give_up(lambdas, dead_letters: LambdaQueue) -> Any:
    """Put `bodies` on the orders DLQ (as SQS moves a message there after maxReceiveCount) and
    deliver them to orders_dead_letter; its response."""

    def deliver(bodies: list[str]) -> dict[str, Any]:
        for body in bodies:
            dead_letters.send(body)
        event = dead_letters.event(dead_letters.receive(len(bodies)))
        response: dict[str, Any] = lambdas.invoke("orders_dead_letter", event).payload
        return response

    return deliver


def moved(orders_queue: OrdersQueue, count: int = 1) -> list[str]:
    """The bodies of the orders queue's messages (taken off it: they go to the DLQ instead)."""
    return [m["Body"] for m in orders_queue.receive(count)]


def test_a_queued_order_whose_message_failed_every_delivery_ends_failed_not_processed(
        api, stack, alice, bob, orders_queue, give_up):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]

    assert give_up(moved(orders_queue)) == {"batchItemFailures": []}

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("failed", "not_processed")
    assert [h["status"] for h in order["history"]] == ["queued", "failed"]
    assert stock_of(api, product_id) == 5
    assert executions_named(stack.client("stepfunctions"), stack.saga_arn, order_id) == []


def test_a_dead_letter_delivered_twice_ends_the_order_once(api, alice, bob, orders_queue, give_up):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]
    (body,) = moved(orders_queue)

    give_up([body])
    give_up([body])

    assert [h["status"] for h in read_order(api, bob, order_id)["history"]] == ["queued", "failed"]


def test_a_reserved_order_whose_saga_never_started_is_started_not_failed(
        api, stack, lambdas, alice, bob, orders_queue, give_up):
    # The reservation was written and every start of the saga failed: the message ran out of
    # deliveries with the stock held. The order must go on, not end.
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    (message,) = orders_queue.receive(1)
    with saga_starts_unavailable() as refused:
        response = lambdas.invoke("consume_orders", orders_queue.event([message])).payload
    assert response["batchItemFailures"] and refused == [order_id]
    assert executions_named(stack.client("stepfunctions"), stack.saga_arn, order_id) == []

    assert give_up([message["Body"]]) == {"batchItemFailures": []}

    assert read_order(api, bob, order_id)["status"] == "reserved"
    assert stock_of(api, product_id) == 4
    assert len(executions_named(stack.client("stepfunctions"), stack.saga_arn, order_id)) == 1


def test_a_queued_order_cancelled_meanwhile_ends_cancelled(api, alice, bob, orders_queue, give_up):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]
    assert api.post(f"/orders/{order_id}/cancel", headers=bob.headers(), body="").status_code == 202

    give_up(moved(orders_queue))

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("cancelled", "cancelled_by_buyer")


def test_a_message_for_an_order_that_does_not_exist_is_acknowledged(bob, give_up):
    withdrawn = OrderPlaced(new_id(), bob.sub, new_id(), 1)

    assert give_up([json.dumps(withdrawn.to_message())]) == {"batchItemFailures": []}


def test_poison_is_logged_whole_and_acknowledged_and_the_good_records_are_applied(
        api, alice, bob, orders_queue, give_up, app_logs):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]
    poison = ["{this is not json", json.dumps({"type": "OrderPlaced", "version": 1, "order_id": "x"})]

    assert give_up(moved(orders_queue) + poison) == {"batchItemFailures": []}

    assert read_order(api, bob, order_id)["status"] == "failed"
    logged = [r for r in app_logs.records
              if r.getMessage() == "unreadable message in the orders dead-letter queue, dropped"]
    assert sorted(getattr(r, "body") for r in logged) == sorted(poison)
