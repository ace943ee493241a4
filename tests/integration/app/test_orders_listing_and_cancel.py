"""GET /orders and POST /orders/{id}/cancel through the real app against moto: the caller's orders
newest first, one query of the right index, cursors that cover every order once; a cancel that
moves the order to `cancelling` and leaves its compensation to whoever holds it (the consumer, the
running saga, or a `<id>-cancel` execution for a confirmed order)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.ids import new_id
from tests.integration.app.helpers import User, body_of
from tests.integration.app.orders_helpers import (
    DynamoDBWire, OrdersQueue, executions_named, new_product, place, read_order, saga_step, stock_of,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def wire() -> Iterator[DynamoDBWire]:
    with DynamoDBWire().watching() as watching:
        yield watching


@pytest.fixture
def consume(lambdas, orders_queue: OrdersQueue) -> Any:
    """Deliver what the orders queue holds (exactly `count` messages) to consume_orders."""

    def deliver(count: int) -> None:
        response = lambdas.invoke("consume_orders", orders_queue.event(orders_queue.receive(count))).payload
        assert response == {"batchItemFailures": []}

    return deliver


def listing(api: Any, user: User, query: str = "") -> Any:
    return api.get(f"/orders{query}", headers=user.headers())


def ids_of(response: Any) -> list[str]:
    assert response.status_code == 200, response.body
    return [order["order_id"] for order in body_of(response)["items"]]


def all_pages(api: Any, user: User, query: str) -> tuple[list[str], int]:
    """Every order id across the pages of a listing, and how many pages it took."""
    found, cursor, pages = [], None, 0
    while True:
        response = listing(api, user, query + (f"&cursor={cursor}" if cursor else ""))
        found += ids_of(response)
        pages += 1
        if not (cursor := body_of(response)["next_cursor"]):
            return found, pages


def cancel(api: Any, user: User, order_id: str) -> Any:
    return api.post(f"/orders/{order_id}/cancel", headers=user.headers(), body="")


# GET /orders


def test_the_callers_orders_are_listed_newest_first_with_one_query_and_nobody_elses(
        api, alice, bob, orders_queue, wire):
    product_id = new_product(api, alice, stock=5)
    placed = [body_of(place(api, bob, product_id))["order_id"] for _ in range(3)]
    alices = body_of(place(api, alice, product_id))["order_id"]
    wire.calls.clear()
    wire.requests.clear()

    response = listing(api, bob)

    assert wire.calls == {"Query": 1}  # one query, never a scan
    assert [body["IndexName"] for _, body in wire.requests] == ["buyer-index"]
    # Ids are ULIDs, so newest first is their descending order.
    assert ids_of(response) == sorted(placed, reverse=True)
    assert body_of(response)["next_cursor"] is None
    items = body_of(response)["items"]
    assert items[0] == read_order(api, bob, items[0]["order_id"])  # the order's whole representation
    assert [o["created_at"] for o in items] == sorted((o["created_at"] for o in items), reverse=True)
    assert ids_of(listing(api, alice)) == [alices]
    orders_queue.receive(4)


def test_a_status_filter_is_one_query_of_the_buyer_status_index(api, alice, bob, orders_queue, consume, wire):
    reserved = body_of(place(api, bob, new_product(api, alice, stock=1)))["order_id"]
    rejected = body_of(place(api, bob, new_product(api, alice, stock=0)))["order_id"]
    consume(2)
    queued = body_of(place(api, bob, new_product(api, alice, stock=1)))["order_id"]
    wire.calls.clear()
    wire.requests.clear()

    by_status = {status: ids_of(listing(api, bob, f"?status={status}"))
                 for status in ("queued", "reserved", "rejected", "confirmed")}

    assert by_status == {"queued": [queued], "reserved": [reserved], "rejected": [rejected], "confirmed": []}
    assert wire.calls == {"Query": 4}
    assert {body.get("IndexName") for _, body in wire.requests} == {"buyer-status-index"}
    orders_queue.receive(1)


def test_cursor_pages_cover_every_order_once(api, alice, bob, orders_queue):
    product_id = new_product(api, alice, stock=5)
    placed = {body_of(place(api, bob, product_id))["order_id"] for _ in range(5)}

    found, pages = all_pages(api, bob, "?limit=2")

    assert sorted(found) == sorted(placed) and len(found) == len(set(found))
    assert found == sorted(found, reverse=True)
    assert pages == 3
    status_found, _ = all_pages(api, bob, "?status=queued&limit=2")
    assert sorted(status_found) == sorted(placed)
    orders_queue.receive(5)


@pytest.mark.parametrize("query, field", [
    ("?status=shipped", "status"),
    ("?status=", "status"),
    ("?cursor=not-a-cursor", "cursor"),
    ("?limit=0", "limit"),
    ("?limit=101", "limit"),
])
def test_a_bad_query_is_a_400_naming_it(api, bob, query, field):
    response = listing(api, bob, query)

    assert response.status_code == 400, response.body
    assert body_of(response)["Message"].startswith(f"{field}: ")


def test_a_cursor_is_only_good_for_the_listing_that_returned_it(api, alice, bob, orders_queue):
    product_id = new_product(api, alice, stock=5)
    for _ in range(2):
        place(api, bob, product_id)
    cursor = body_of(listing(api, bob, "?limit=1"))["next_cursor"]
    assert cursor

    for who, query in ((bob, f"?status=queued&cursor={cursor}"), (alice, f"?cursor={cursor}")):
        response = listing(api, who, query)
        assert response.status_code == 400 and body_of(response)["Message"].startswith("cursor: ")
    orders_queue.receive(2)


def test_listing_orders_needs_a_token(api):
    response = api.get("/orders")

    assert response.status_code == 401 and body_of(response)["Code"] == "UnauthorizedError"


# POST /orders/{id}/cancel


def test_a_queued_order_is_cancelling_and_the_consumer_ends_it_cancelled_taking_nothing(
        api, stack, alice, bob, orders_queue, consume):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]

    response = cancel(api, bob, order_id)

    assert response.status_code == 202, response.body
    assert body_of(response)["status"] == "cancelling"
    assert read_order(api, bob, order_id)["status"] == "cancelling"
    consume(1)
    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("cancelled", "cancelled_by_buyer")
    assert [h["status"] for h in order["history"]] == ["queued", "cancelling", "cancelled"]
    assert stock_of(api, product_id) == 5
    assert executions_named(stack.client("stepfunctions"), stack.saga_arn, order_id) == []


@pytest.mark.parametrize("body", ["[]", '{"reason": "changed my mind"}', "null", "not json"])
def test_a_cancel_takes_no_fields_a_body_other_than_an_empty_object_is_a_400_and_cancels_nothing(
        api, alice, bob, body):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]

    response = api.post(f"/orders/{order_id}/cancel", headers={**bob.headers(), "Content-Type": "application/json"},
                        body=body)

    assert response.status_code == 400 and body_of(response)["Message"].startswith("body: "), response.body
    assert read_order(api, bob, order_id)["status"] == "queued"
    empty = api.post(f"/orders/{order_id}/cancel", headers={**bob.headers(), "Content-Type": "application/json"},
                     body="{}")
    assert empty.status_code == 202


def test_a_reserved_order_is_cancelling_and_left_to_its_running_saga(api, stack, alice, bob, consume):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    consume(1)

    response = cancel(api, bob, order_id)

    assert response.status_code == 202 and body_of(response)["status"] == "cancelling"
    sfn = stack.client("stepfunctions")
    assert [e["name"] for e in executions_named(sfn, stack.saga_arn, order_id)] == [order_id]
    assert executions_named(sfn, stack.saga_arn, f"{order_id}-cancel") == []  # the saga compensates
    assert stock_of(api, product_id) == 4  # still held, until the saga puts it back


def test_a_confirmed_order_is_cancelling_and_its_cancellation_execution_is_started_once(
        api, stack, lambdas, alice, bob, consume):
    product_id = new_product(api, alice, stock=5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    consume(1)
    for step in ("authorize", "capture", "confirm"):
        saga_step(lambdas, step, order_id)
    assert read_order(api, bob, order_id)["status"] == "confirmed"

    first, again = cancel(api, bob, order_id), cancel(api, bob, order_id)

    assert (first.status_code, again.status_code) == (202, 202)
    assert body_of(first)["status"] == body_of(again)["status"] == "cancelling"
    sfn = stack.client("stepfunctions")
    (execution,) = executions_named(sfn, stack.saga_arn, f"{order_id}-cancel")
    started = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == {"order_id": order_id, "action": "cancel"}


@pytest.mark.parametrize("ending", ["rejected", "cancelled"])
def test_an_ended_order_cannot_be_cancelled_409(api, alice, bob, consume, ending):
    product_id = new_product(api, alice, stock=0 if ending == "rejected" else 5)
    order_id = body_of(place(api, bob, product_id))["order_id"]
    if ending == "cancelled":
        assert cancel(api, bob, order_id).status_code == 202
    consume(1)
    before = read_order(api, bob, order_id)
    assert before["status"] == ending

    response = cancel(api, bob, order_id)

    assert response.status_code == 409, response.body
    assert body_of(response)["Code"] == "ConflictError"
    assert read_order(api, bob, order_id) == before


def test_someone_elses_order_cannot_be_cancelled_403(api, alice, bob, orders_queue):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]

    response = cancel(api, alice, order_id)

    assert response.status_code == 403 and body_of(response)["Code"] == "ForbiddenError"
    assert read_order(api, bob, order_id)["status"] == "queued"
    orders_queue.receive(1)


@pytest.mark.parametrize("order_id", [new_id(), "not-an-id"])
def test_cancelling_an_unknown_order_is_404(api, bob, order_id):
    response = cancel(api, bob, order_id)

    assert response.status_code == 404 and body_of(response)["Code"] == "NotFoundError"


def test_cancelling_needs_a_token(api, alice, bob, orders_queue):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]

    assert api.post(f"/orders/{order_id}/cancel", body="").status_code == 401
    assert read_order(api, bob, order_id)["status"] == "queued"
    orders_queue.receive(1)
