"""consume_orders against moto, invoked as Lambda invokes it with SQS events built from messages
received from the real OrdersQueue: one atomic write per order (the reservation), the order's saga
started once (a Step Functions execution named by the order), redelivery, poison, throttling, races."""

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
    DynamoDBWire, OrdersQueue, executions_named, failed_ids, new_product, place, read_order, saga_starts_unavailable,
    stock_of,
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


@pytest.fixture(scope="module")
def sagas_of(stack) -> Callable[[str], list[dict[str, Any]]]:
    """The saga executions started for an order (moto records them; none runs here)."""
    sfn = stack.client("stepfunctions")

    def executions(order_id: str) -> list[dict[str, Any]]:
        return [sfn.describe_execution(executionArn=e["executionArn"])
                for e in executions_named(sfn, stack.saga_arn, order_id)]

    return executions


def assert_saga_started_once(sagas_of: Callable[[str], list[dict[str, Any]]], order_id: str) -> None:
    (execution,) = sagas_of(order_id)
    assert json.loads(execution["input"]) == {"order_id": order_id}


def order_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [json.loads(m["Body"])["order_id"] for m in messages]


def mentions(order_id: str) -> Callable[[dict[str, Any]], bool]:
    """A DynamoDB request body that names this order."""
    return lambda body: order_id in json.dumps(body)


# One atomic write per order


def test_an_order_with_enough_stock_is_reserved_by_one_transaction_and_its_saga_started(
        api, alice, bob, orders_queue, consume, wire, sagas_of):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    event = orders_queue.event(orders_queue.receive(1))
    wire.calls.clear()

    assert consume(event) == {"batchItemFailures": []}

    # The batch's stock read, then stock - 2 and the order's status together in ONE TransactWriteItems.
    assert wire.calls == {"BatchGetItem": 1, "TransactWriteItems": 1}
    order = read_order(api, bob, order_id)
    assert order["status"] == "reserved" and "reason" not in order
    # The amount is fixed at the price of the moment the stock was taken; nothing is paid yet.
    assert (order["amount_cents"], order["currency"], order["payment"]) == (2 * 1200, "EUR", {"status": "none"})
    assert [h["status"] for h in order["history"]] == ["queued", "reserved"]
    assert order["updated_at"] > order["created_at"]
    product = body_of(api.get(f"/products/{product_id}"))
    assert (product["stock"], product["version"]) == (3, 2)  # a stock change is a change
    assert_saga_started_once(sagas_of, order_id)


def test_an_order_for_exactly_the_stock_left_is_reserved_down_to_zero(api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=3)
    order_id = body_of(place(api, bob, product_id, 3))["order_id"]

    consume(orders_queue.event(orders_queue.receive(1)))

    assert read_order(api, bob, order_id)["status"] == "reserved"
    assert stock_of(api, product_id) == 0


def test_an_order_beyond_the_stock_is_rejected_by_one_update_and_takes_nothing(
        api, alice, bob, orders_queue, consume, wire, sagas_of):
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
    assert sagas_of(order_id) == []  # nothing to pay for


def test_an_order_for_a_product_that_does_not_exist_is_rejected_product_not_found(
        api, bob, orders_queue, consume, sagas_of):
    order_id = body_of(place(api, bob, new_id()))["order_id"]

    consume(orders_queue.event(orders_queue.receive(1)))

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("rejected", "product_not_found")
    assert sagas_of(order_id) == []


def test_an_order_for_a_product_deleted_after_it_was_placed_is_rejected_product_not_found(
        api, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    assert api.delete(f"/products/{product_id}", headers=alice.headers()).status_code == 204

    consume(orders_queue.event(orders_queue.receive(1)))

    assert read_order(api, bob, order_id)["reason"] == "product_not_found"


def test_a_batch_reserves_orders_until_the_stock_is_gone_and_rejects_the_rest(
        api, alice, bob, orders_queue, consume, sagas_of):
    product_id = new_product(api, alice, stock=3)
    placed = [body_of(place(api, bob, product_id))["order_id"] for _ in range(5)]
    messages = orders_queue.receive(5)

    assert consume(orders_queue.event(messages)) == {"batchItemFailures": []}

    statuses = {order_id: read_order(api, bob, order_id)["status"] for order_id in placed}
    assert Counter(statuses.values()) == {"reserved": 3, "rejected": 2}
    assert stock_of(api, product_id) == 0
    assert {order_id: len(sagas_of(order_id)) for order_id in placed} == {
        order_id: 1 if status == "reserved" else 0 for order_id, status in statuses.items()}


# Redelivery


def test_a_redelivered_reserved_order_changes_nothing_and_its_saga_is_started_once(
        api, alice, bob, orders_queue, consume, sagas_of):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    first = orders_queue.receive(1)
    consume(orders_queue.event(first))
    reserved = read_order(api, bob, order_id)
    orders_queue.make_visible(first)  # as if the batch's deletion had been lost
    again = orders_queue.receive(1)
    assert again[0]["MessageId"] == first[0]["MessageId"]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"

    assert consume(orders_queue.event(again)) == {"batchItemFailures": []}

    assert read_order(api, bob, order_id) == reserved
    assert stock_of(api, product_id) == 3
    assert_saga_started_once(sagas_of, order_id)


def test_a_saga_that_could_not_be_started_is_started_by_the_redelivery_without_reserving_twice(
        api, alice, bob, orders_queue, consume, sagas_of):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id, 2))["order_id"]
    messages = orders_queue.receive(1)
    with saga_starts_unavailable() as refused:
        # The stock is taken, the start fails: the record is retried (the reservation stays).
        assert failed_ids(consume(orders_queue.event(messages))) == {messages[0]["MessageId"]}
    assert refused == [order_id] and sagas_of(order_id) == []
    assert read_order(api, bob, order_id)["status"] == "reserved"
    orders_queue.make_visible(messages)

    assert consume(orders_queue.event(orders_queue.receive(1))) == {"batchItemFailures": []}

    assert_saga_started_once(sagas_of, order_id)
    assert stock_of(api, product_id) == 3  # reserved once


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
    assert [read_order(api, bob, order_id)["status"] for order_id in good] == ["reserved", "reserved"]
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
    ("TransactWriteItems", 10),  # the reserving write
    ("BatchGetItem", 10),        # the stock read of an order (of its product alone), once the batch's failed
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
    # A read names the product; the batch's read names both, so it fails too.
    wire.fail(operation, THROTTLED, when=mentions(unlucky if operation != "BatchGetItem" else unlucky_product))

    response = consume(orders_queue.event(messages))

    assert failed_ids(response) == {unlucky_message["MessageId"]}
    wire.heal()  # before reading through the API, which the injection would fail too
    outcome = "reserved" if stock else "rejected"
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
    assert Counter(read_order(api, bob, order_id)["status"] for order_id in orders) == {"reserved": 3, "rejected": 2}
    assert stock_of(api, product_id) == 0


def test_a_throttled_batch_read_falls_back_to_reading_each_products_stock(api, alice, bob, orders_queue, consume, wire):
    product_id = new_product(api, alice, stock=1)
    orders = [body_of(place(api, bob, product_id))["order_id"] for _ in range(2)]
    event = orders_queue.event(orders_queue.receive(2))
    wire.fail("BatchGetItem", THROTTLED, times=1)  # the batch's read
    wire.calls.clear()

    assert consume(event) == {"batchItemFailures": []}

    # The first order reads it (what reached DynamoDB); the second knows what the first took.
    assert wire.calls == {"BatchGetItem": 1, "TransactWriteItems": 1, "UpdateItem": 1}
    assert sorted(read_order(api, bob, order_id)["status"] for order_id in orders) == ["rejected", "reserved"]


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
    assert read_order(api, bob, order_id)["status"] == "reserved"


# Concurrent consumers


@pytest.mark.timeout(120)
def test_concurrent_consumers_racing_for_the_last_units_never_oversell(api, alice, bob, orders_queue, sagas_of,
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
    statuses = {order_id: read_order(api, bob, order_id)["status"] for order_id in placed}
    assert Counter(statuses.values()) == {"reserved": stock, "rejected": orders - stock}
    assert stock_of(api, product_id) == 0
    # One saga per reserved order, none for a rejected one.
    assert {order_id: len(sagas_of(order_id)) for order_id in placed} == {
        order_id: 1 if status == "reserved" else 0 for order_id, status in statuses.items()}
