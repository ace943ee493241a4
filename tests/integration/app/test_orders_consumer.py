"""consume_orders against moto, invoked as Lambda invokes it with SQS events built from messages
received from the real OrdersQueue: one atomic write per order, redelivery, poison, throttling, races."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.local import LambdaContext
from chalice.test import Client

from chalicelib.domain.ids import new_id
from chalicelib.domain.orders import OrderPlaced
from tests.integration.app.helpers import body_of
from tests.integration.app.orders_helpers import (
    DynamoDBWire, OrdersQueue, failed_ids, new_product, place, read_order, stock_of,
)
from tests.support.threads import frequent_thread_switches  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(90)

THROTTLED = "ProvisionedThroughputExceededException"


@pytest.fixture(scope="module")
def consume(stack) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """Invoke consume_orders with an SQS event, through chalice.test's Lambda client."""
    from app import app

    with Client(app) as client:
        yield lambda event: client.lambda_.invoke("consume_orders", event).payload


@pytest.fixture
def wire() -> Iterator[DynamoDBWire]:
    with DynamoDBWire().watching() as watching:
        yield watching


def order_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [json.loads(m["Body"])["order_id"] for m in messages]


def mentions(order_id: str) -> Callable[[dict[str, Any]], bool]:
    """A DynamoDB request body that names this order."""
    return lambda body: order_id in json.dumps(body)


# One atomic write per order


def test_an_order_with_enough_stock_is_confirmed_by_one_transaction(api, alice, bob, orders_queue, consume, wire):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    event = orders_queue.event(orders_queue.receive(1))
    wire.calls.clear()

    assert consume(event) == {"batchItemFailures": []}

    # The batch's stock read, then stock - 2 and the order's status together in ONE TransactWriteItems.
    assert wire.calls == {"BatchGetItem": 1, "TransactWriteItems": 1}
    order = read_order(api, bob, order_id)
    assert order["status"] == "confirmed" and "reason" not in order
    assert order["updated_at"] > order["created_at"]
    product = body_of(api.get(f"/products/{product_id}"))
    assert (product["stock"], product["version"]) == (3, 2)  # a stock change is a change


def test_an_order_for_exactly_the_stock_left_is_confirmed_down_to_zero(api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=3)
    order_id = body_of(place(api, bob, product_id, 3))["order_id"]

    consume(orders_queue.event(orders_queue.receive(1)))

    assert read_order(api, bob, order_id)["status"] == "confirmed"
    assert stock_of(api, product_id) == 0


def test_an_order_beyond_the_stock_is_rejected_by_one_update_and_takes_nothing(
        api, alice, bob, orders_queue, consume, wire):
    product_id = new_product(api, alice, stock=1)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    event = orders_queue.event(orders_queue.receive(1))
    wire.calls.clear()

    assert consume(event) == {"batchItemFailures": []}

    assert wire.calls == {"BatchGetItem": 1, "UpdateItem": 1}
    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("rejected", "out_of_stock")
    product = body_of(api.get(f"/products/{product_id}"))
    assert (product["stock"], product["version"]) == (1, 1)


def test_an_order_for_a_product_that_does_not_exist_is_rejected_product_not_found(api, bob, orders_queue, consume):
    order_id = body_of(place(api, bob, new_id()))["order_id"]

    consume(orders_queue.event(orders_queue.receive(1)))

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("rejected", "product_not_found")


def test_an_order_for_a_product_deleted_after_it_was_placed_is_rejected_product_not_found(
        api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    assert api.delete(f"/products/{product_id}", headers=alice.headers()).status_code == 204

    consume(orders_queue.event(orders_queue.receive(1)))

    assert read_order(api, bob, order_id)["reason"] == "product_not_found"


def test_a_batch_confirms_orders_until_the_stock_is_gone_and_rejects_the_rest(api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=3)
    placed = [body_of(place(api, bob, product_id))["order_id"] for _ in range(5)]
    messages = orders_queue.receive(5)

    assert consume(orders_queue.event(messages)) == {"batchItemFailures": []}

    statuses = Counter(read_order(api, bob, order_id)["status"] for order_id in placed)
    assert statuses == {"confirmed": 3, "rejected": 2}
    assert stock_of(api, product_id) == 0


# Redelivery


def test_a_redelivered_confirmed_order_changes_nothing(api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    first = orders_queue.receive(1)
    consume(orders_queue.event(first))
    confirmed = read_order(api, bob, order_id)
    orders_queue.make_visible(first)  # as if the batch's deletion had been lost
    again = orders_queue.receive(1)
    assert again[0]["MessageId"] == first[0]["MessageId"]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"

    assert consume(orders_queue.event(again)) == {"batchItemFailures": []}

    assert read_order(api, bob, order_id) == confirmed
    assert stock_of(api, product_id) == 3


def test_a_redelivered_rejected_order_stays_rejected_after_a_restock(api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=1)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    first = orders_queue.receive(1)
    consume(orders_queue.event(first))
    restocked = api.patch(f"/products/{product_id}", headers=alice.headers(**{"If-Match": '"1"'}),
                          body=json.dumps({"stock": 10}))
    assert restocked.status_code == 200
    orders_queue.make_visible(first)

    assert consume(orders_queue.event(orders_queue.receive(1))) == {"batchItemFailures": []}

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("rejected", "out_of_stock")
    assert stock_of(api, product_id) == 10


def test_a_message_for_an_order_the_api_withdrew_is_acknowledged_and_changes_nothing(
        api, stack, alice, bob, orders_queue, consume):
    # What SQS holds when send_message raised after taking the message: the API removed the
    # order and told the buyer 503 (test_orders_api.py), so the order must not come to life.
    product_id = new_product(api, alice, stock=5)
    withdrawn = OrderPlaced(new_id(), bob.sub, product_id, 1)
    orders_queue.send(json.dumps(withdrawn.to_message()))

    assert consume(orders_queue.event(orders_queue.receive(1))) == {"batchItemFailures": []}

    assert api.get(f"/orders/{withdrawn.order_id}", headers=bob.headers()).status_code == 404
    assert stock_of(api, product_id) == 5


# Poison


POISON = ["not json at all", json.dumps({"type": "OrderPlaced", "version": 1, "order_id": "x"}),
          json.dumps(["an", "array"])]


def test_poison_messages_fail_alone_and_the_good_records_of_the_batch_are_applied(
        api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=5)
    good = [body_of(place(api, bob, product_id))["order_id"] for _ in range(2)]
    poison_ids = {orders_queue.send(body) for body in POISON}
    messages = orders_queue.receive(2 + len(POISON))

    response = consume(orders_queue.event(messages))

    assert failed_ids(response) == poison_ids
    assert [read_order(api, bob, order_id)["status"] for order_id in good] == ["confirmed", "confirmed"]
    assert stock_of(api, product_id) == 3


def test_a_poison_message_ends_in_the_dead_letter_queue_after_max_receive_count(stack, orders_queue, consume):
    sqs = stack.client("sqs")
    dlq_url = stack.provisioned.env()["ORDERS_QUEUE_DEAD_LETTER_QUEUE"]
    attributes = sqs.get_queue_attributes(QueueUrl=orders_queue.url, AttributeNames=["RedrivePolicy"])
    max_receive_count = int(json.loads(attributes["Attributes"]["RedrivePolicy"])["maxReceiveCount"])
    poison_id = orders_queue.send("not json at all")

    for attempt in range(1, max_receive_count + 1):
        messages = orders_queue.receive(1)
        assert messages[0]["Attributes"]["ApproximateReceiveCount"] == str(attempt)
        assert failed_ids(consume(orders_queue.event(messages))) == {poison_id}
        orders_queue.make_visible(messages)  # what the failure does, once its visibility ends

    assert orders_queue.is_empty()
    moved = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in moved] == [poison_id]
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=moved[0]["ReceiptHandle"])


# Throttling and other transient failures


@pytest.mark.parametrize("operation, stock", [
    ("TransactWriteItems", 10),  # the confirming write
    ("GetItem", 10),             # the stock read of an order, once the batch's read failed
    ("UpdateItem", 0),           # the rejecting write
])
def test_a_throttled_record_alone_is_retried_nothing_of_it_is_written_and_the_retry_applies_it(
        api, alice, bob, orders_queue, consume, wire, operation, stock):
    product_id = new_product(api, alice, stock=stock)
    unlucky_product = new_product(api, alice, stock=stock)  # only its records are throttled
    lucky = [body_of(place(api, bob, product_id))["order_id"] for _ in range(2)]
    unlucky = body_of(place(api, bob, unlucky_product))["order_id"]
    messages = orders_queue.receive(3)
    unlucky_message = next(m for m in messages if json.loads(m["Body"])["order_id"] == unlucky)
    if operation == "GetItem":
        wire.fail("BatchGetItem", THROTTLED)
    wire.fail(operation, THROTTLED, when=mentions(unlucky if operation != "GetItem" else unlucky_product))

    response = consume(orders_queue.event(messages))

    assert failed_ids(response) == {unlucky_message["MessageId"]}
    wire.heal()  # before reading through the API, which the injection would fail too
    outcome = "confirmed" if stock else "rejected"
    assert [read_order(api, bob, order_id)["status"] for order_id in lucky] == [outcome, outcome]
    assert read_order(api, bob, unlucky)["status"] == "queued"
    assert stock_of(api, unlucky_product) == stock

    orders_queue.make_visible([unlucky_message])
    retried = orders_queue.receive(1)
    assert retried[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert consume(orders_queue.event(retried)) == {"batchItemFailures": []}
    assert read_order(api, bob, unlucky)["status"] == outcome
    assert stock_of(api, unlucky_product) == max(stock - 1, 0)


def test_a_batch_reads_the_stock_once_for_all_its_orders(api, alice, bob, orders_queue, consume, wire):
    product_id = new_product(api, alice, stock=3)
    orders = [body_of(place(api, bob, product_id))["order_id"] for _ in range(5)]
    event = orders_queue.event(orders_queue.receive(5))
    wire.calls.clear()

    assert consume(event) == {"batchItemFailures": []}

    # One read for the batch; then one write per order, each knowing what the previous took.
    assert wire.calls == {"BatchGetItem": 1, "TransactWriteItems": 3, "UpdateItem": 2}
    assert sorted(read_order(api, bob, order_id)["status"] for order_id in orders) == ["confirmed"] * 3 + ["rejected"] * 2
    assert stock_of(api, product_id) == 0


def test_a_throttled_batch_read_falls_back_to_reading_each_products_stock(api, alice, bob, orders_queue, consume, wire):
    product_id = new_product(api, alice, stock=1)
    orders = [body_of(place(api, bob, product_id))["order_id"] for _ in range(2)]
    event = orders_queue.event(orders_queue.receive(2))
    wire.fail("BatchGetItem", THROTTLED)
    wire.calls.clear()

    assert consume(event) == {"batchItemFailures": []}

    assert wire.calls["GetItem"] == 1  # the first order reads it; the second knows what the first took
    assert sorted(read_order(api, bob, order_id)["status"] for order_id in orders) == ["confirmed", "rejected"]


def test_a_transaction_cancelled_by_a_conflict_is_retried_not_rejected(api, alice, bob, orders_queue, consume, wire):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    messages = orders_queue.receive(1)
    wire.fail("TransactWriteItems", "TransactionCanceledException", reasons=["None", "TransactionConflict"])

    assert failed_ids(consume(orders_queue.event(messages))) == {messages[0]["MessageId"]}

    assert read_order(api, bob, order_id)["status"] == "queued"
    wire.heal()
    orders_queue.make_visible(messages)
    consume(orders_queue.event(orders_queue.receive(1)))
    assert read_order(api, bob, order_id)["status"] == "confirmed"


# Concurrent consumers


@pytest.mark.timeout(120)
def test_concurrent_consumers_racing_for_the_last_units_never_oversell(api, alice, bob, orders_queue,
                                                                       frequent_thread_switches):
    from app import app

    stock, orders, consumers = 7, 40, 8
    handler = app.handler_map["consume_orders"]
    # Chalice builds a handler's middleware chain from a generator on its first call, which is
    # not thread-safe (Lambda never calls one process concurrently): call it once first.
    warm_up = orders_queue.send("warm-up")
    assert failed_ids(handler(orders_queue.event(orders_queue.receive(1)),
                              LambdaContext("consume_orders", memory_size=512))) == {warm_up}
    orders_queue.forget_received()
    product_id = new_product(api, alice, stock=stock)
    placed = [body_of(place(api, bob, product_id))["order_id"] for _ in range(orders)]
    messages = orders_queue.receive(orders, timeout=30)
    batches = [messages[i::consumers] for i in range(consumers)]
    start = threading.Barrier(consumers)
    failures: list[set[str]] = []

    def consumer(batch: list[dict[str, Any]]) -> None:
        start.wait()
        response = handler(orders_queue.event(batch), LambdaContext("consume_orders", memory_size=512))
        failures.append(failed_ids(response))

    threads = [threading.Thread(target=consumer, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == [set()] * consumers
    statuses = Counter(read_order(api, bob, order_id)["status"] for order_id in placed)
    assert statuses == {"confirmed": stock, "rejected": orders - stock}
    assert stock_of(api, product_id) == 0
