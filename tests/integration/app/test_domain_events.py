"""Domain events end to end over moto: a write commits, its table's stream holds the change, the
publisher (invoked with the stream's records as Lambda's event source mapping would) puts its
events on the bus, moto's rules route them to the read side's queues, and the read side's
consumers keep the sales read model and e-mail sellers. Each test plays the mapping's part."""

from __future__ import annotations

import json
from datetime import timedelta
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from devstack.tokens import local_email
from tests.integration.app.conftest import REGION
from tests.integration.app.events_helpers import StreamTail, stream_event
from tests.integration.app.helpers import User, body_of
from tests.integration.app.orders_helpers import OrdersQueue, new_product, place, read_order, saga_step
from tests.support.sqs import LambdaQueue

pytestmark = pytest.mark.timeout(90)

PRICE = 1200  # tests.integration.app.helpers.PRODUCT's price


@pytest.fixture
def products_stream(stack) -> StreamTail:
    return StreamTail(stack.client("dynamodb"), stack.client("dynamodbstreams"),
                      stack.provisioned["ProductsTable"].ref)


@pytest.fixture
def orders_stream(stack) -> StreamTail:
    return StreamTail(stack.client("dynamodb"), stack.client("dynamodbstreams"), stack.provisioned["OrdersTable"].ref)


def _queue(stack, logical_id: str) -> Iterator[LambdaQueue]:
    queue = LambdaQueue(stack.client("sqs"), stack.provisioned[logical_id].ref, REGION)
    queue.drain()
    yield queue
    queue.drain()


@pytest.fixture
def sales_queue(stack) -> Iterator[LambdaQueue]:
    yield from _queue(stack, "SalesEventsQueue")


@pytest.fixture
def low_stock_queue(stack) -> Iterator[LambdaQueue]:
    yield from _queue(stack, "LowStockQueue")


@pytest.fixture
def confirmed(api, lambdas, alice: User, bob: User, orders_queue: OrdersQueue) -> Callable[..., tuple[str, str]]:
    """An order of bob's for a product of alice's, taken through the saga to `confirmed`."""

    def make(product_id: str | None = None, quantity: int = 1, stock: int = 50) -> tuple[str, str]:
        product_id = product_id or new_product(api, alice, stock=stock)
        order_id = body_of(place(api, bob, product_id, quantity))["order_id"]
        assert lambdas.invoke("consume_orders", orders_queue.event(orders_queue.receive(1))).payload == {
            "batchItemFailures": []}
        for step in ("authorize", "capture", "confirm"):
            saga_step(lambdas, step, order_id)
        assert read_order(api, bob, order_id)["status"] == "confirmed"
        return product_id, order_id

    return make


def publish(lambdas, function: str, stream: StreamTail, ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hand the stream's new records of `ids` to the publisher; (its answer, the event it got)."""
    event = stream_event(stream.new(ids), stream.arn)
    return lambdas.invoke(function, event).payload, event


def deliver(lambdas, function: str, queue: LambdaQueue, count: int) -> list[dict[str, Any]]:
    """Receive `count` events from the read side's queue and hand them to `function` at once;
    the events' bodies."""
    messages = queue.receive(count)
    assert lambdas.invoke(function, queue.event(messages)).payload == {"batchItemFailures": []}
    queue.delete(messages)
    return [json.loads(m["Body"]) for m in messages]


def sales_of(api, user: User) -> dict[str, Any]:
    response = api.get("/sellers/me/sales", headers=user.headers())
    assert response.status_code == 200, response.body
    return body_of(response)


def test_a_confirmed_order_reaches_its_sellers_sales(api, lambdas, alice, bob, confirmed, orders_stream,
                                                      products_stream, sales_queue):
    product_id, order_id = confirmed(quantity=3)
    publish(lambdas, "publish_product_events", products_stream, [product_id])  # its name

    answer, _ = publish(lambdas, "publish_order_events", orders_stream, [order_id])

    assert answer == {"batchItemFailures": []}
    # ProductCreated (a name), OrderConfirmed; the stock's ProductUpdated changed no name: not routed here
    bodies = deliver(lambdas, "project_sales", sales_queue, 2)
    assert sorted(b["detail-type"] for b in bodies) == ["OrderConfirmed", "ProductCreated"]
    (confirmation,) = [b for b in bodies if b["detail-type"] == "OrderConfirmed"]
    assert confirmation["source"] == "storefront.orders"
    assert {k: confirmation["detail"][k] for k in ("order_id", "owner", "seller", "product_id", "quantity")} == {
        "order_id": order_id, "owner": bob.sub, "seller": alice.sub, "product_id": product_id, "quantity": 3}
    sales = sales_of(api, alice)
    assert sales["totals"] == {"orders": 1, "units": 3, "revenue_cents": 3 * PRICE}
    assert sales["products"] == [{"product_id": product_id, "name": "Mug", "orders": 1, "units": 3,
                                  "revenue_cents": 3 * PRICE}]
    assert sales["as_of"] is not None
    assert sales_of(api, bob) == {"totals": {"orders": 0, "units": 0, "revenue_cents": 0}, "products": [],
                                  "as_of": None}


def test_the_same_changes_published_twice_count_once(api, lambdas, alice, confirmed, orders_stream, sales_queue):
    _, order_id = confirmed(quantity=2)
    records = orders_stream.new([order_id])
    event = stream_event(records, orders_stream.arn)

    for _ in range(2):  # a batch retried after its answer was lost
        assert lambdas.invoke("publish_order_events", event).payload == {"batchItemFailures": []}
    bodies = deliver(lambdas, "project_sales", sales_queue, 2)

    assert bodies[0]["detail"]["event_id"] == bodies[1]["detail"]["event_id"]
    assert sales_of(api, alice)["totals"] == {"orders": 1, "units": 2, "revenue_cents": 2 * PRICE}


def test_a_confirmed_order_cancelled_is_taken_off_the_sales(api, lambdas, alice, bob, confirmed, orders_stream,
                                                           sales_queue):
    product_id, order_id = confirmed(quantity=1)
    _, kept = confirmed(product_id=product_id, quantity=2)
    assert api.post(f"/orders/{order_id}/cancel", headers=bob.headers()).status_code == 202
    for step in ("release", "restock", "end"):  # the `<id>-cancel` execution's steps
        saga_step(lambdas, step, order_id)
    assert read_order(api, bob, order_id)["status"] == "cancelled"

    publish(lambdas, "publish_order_events", orders_stream, [order_id, kept])
    bodies = deliver(lambdas, "project_sales", sales_queue, 3)

    assert sorted(b["detail-type"] for b in bodies) == ["OrderCancelled", "OrderConfirmed", "OrderConfirmed"]
    assert sales_of(api, alice)["totals"] == {"orders": 1, "units": 2, "revenue_cents": 2 * PRICE}


def test_stock_falling_below_five_emails_the_seller_once_naming_the_product(
        api, lambdas, alice, bob, orders_queue, products_stream, low_stock_queue):
    product_id = new_product(api, alice, stock=6)
    place(api, bob, product_id, 2)
    assert lambdas.invoke("consume_orders", orders_queue.event(orders_queue.receive(1))).payload == {
        "batchItemFailures": []}  # stock 6 -> 4: a crossing

    answer, event = publish(lambdas, "publish_product_events", products_stream, [product_id])
    assert answer == {"batchItemFailures": []}
    assert lambdas.invoke("publish_product_events", event).payload == {"batchItemFailures": []}  # again
    bodies = deliver(lambdas, "email_low_stock", low_stock_queue, 2)

    assert [b["detail-type"] for b in bodies] == ["StockLow", "StockLow"]
    assert bodies[0]["detail"]["stock"] == 4
    mails = [m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
             if product_id in getattr(m, "body", "")]
    assert len(mails) == 1
    assert mails[0].destinations == {"ToAddresses": [local_email(alice.username)]}
    assert "Mug" in mails[0].subject and product_id in mails[0].body


def test_a_change_that_makes_no_event_is_the_batch_failure_and_the_changes_before_it_are_published(
        api, lambdas, alice, products_stream, sales_queue):
    first, second = new_product(api, alice, stock=9), new_product(api, alice, stock=9)
    event = stream_event(products_stream.new([first, second]), products_stream.arn)
    poison = event["Records"][1]
    poison["dynamodb"]["NewImage"] = {"id": {"S": second}, "price_cents": {"S": "not a number"}}

    answer = lambdas.invoke("publish_product_events", event).payload

    assert answer == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]}]}
    (body,) = deliver(lambdas, "project_sales", sales_queue, 1)
    assert (body["detail-type"], body["detail"]["product_id"]) == ("ProductCreated", first)


def test_a_batch_the_stream_gave_up_on_is_read_back_and_published(api, lambdas, alice, products_stream,
                                                                   sales_queue, stack):
    product_id = new_product(api, alice, stock=9)
    (record,) = products_stream.new([product_id])
    failure_queue = LambdaQueue(stack.client("sqs"), stack.provisioned["DomainEventsFailureQueue"].ref, REGION)
    sequence = record["dynamodb"]["SequenceNumber"]
    failure_queue.send(json.dumps({  # what Lambda sends to the on-failure destination
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "DDBStreamBatchInfo": {"shardId": products_stream.shard_id, "startSequenceNumber": sequence,
                               "endSequenceNumber": sequence, "batchSize": 1, "streamArn": products_stream.arn}}))

    assert lambdas.invoke("recover_lost_changes", failure_queue.event(failure_queue.receive(1))).payload == {
        "batchItemFailures": []}

    (body,) = deliver(lambdas, "project_sales", sales_queue, 1)
    assert (body["detail-type"], body["detail"]["product_id"]) == ("ProductCreated", product_id)
    failure_queue.drain()


def test_the_rebuilt_read_model_equals_the_live_one(api, lambdas, alice, confirmed, orders_stream, sales_queue):
    product_id, first = confirmed(quantity=1)
    _, second = confirmed(product_id=product_id, quantity=4)
    publish(lambdas, "publish_order_events", orders_stream, [first, second])
    deliver(lambdas, "project_sales", sales_queue, 2)
    live = sales_of(api, alice)

    rebuilt = lambdas.invoke("rebuild_sales", {}).payload

    assert rebuilt["facts"] >= 2 and rebuilt["cleared"] >= 2
    again = sales_of(api, alice)
    assert {k: again[k] for k in ("totals", "products")} == {k: live[k] for k in ("totals", "products")}
    assert again["totals"] == {"orders": 2, "units": 5, "revenue_cents": 5 * PRICE}


def test_sales_need_a_token(api):
    response = api.get("/sellers/me/sales")

    assert response.status_code == 401


def test_a_live_count_during_a_rebuild_is_held_back_then_counted_once(api, lambdas, alice, confirmed, orders_stream,
                                                                      sales_queue, stack):
    from chalicelib.adapters.sales_table import PynamoSalesProjection, bind_sales_table
    from chalicelib.bootstrap import utc_now

    _, order_id = confirmed(quantity=2)
    publish(lambdas, "publish_order_events", orders_stream, [order_id])
    messages = sales_queue.receive(1)
    projection = PynamoSalesProjection(bind_sales_table(table=stack.provisioned["SalesTable"].ref, region=REGION),
                                       utc_now)
    projection.begin_rebuild(utc_now() + timedelta(minutes=15))  # what rebuild_sales does first
    try:
        held = lambdas.invoke("project_sales", sales_queue.event(messages)).payload
    finally:
        projection.end_rebuild()

    assert held == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert sales_of(api, alice)["totals"]["orders"] == 0
    assert lambdas.invoke("project_sales", sales_queue.event(messages)).payload == {"batchItemFailures": []}
    assert sales_of(api, alice)["totals"] == {"orders": 1, "units": 2, "revenue_cents": 2 * PRICE}
    sales_queue.delete(messages)


def test_a_lost_read_model_comes_back_from_the_archive_by_replay(api, lambdas, alice, confirmed, orders_stream,
                                                                 sales_queue, stack):
    from datetime import datetime, timezone

    product_id, first = confirmed(quantity=1)
    _, second = confirmed(product_id=product_id, quantity=3)
    publish(lambdas, "publish_order_events", orders_stream, [first, second])
    deliver(lambdas, "project_sales", sales_queue, 2)
    live = sales_of(api, alice)
    ddb = stack.client("dynamodb")
    table = stack.provisioned["SalesTable"].ref
    for item in ddb.scan(TableName=table, ProjectionExpression="pk, sk")["Items"]:  # the table is lost
        ddb.delete_item(TableName=table, Key=item)
    assert sales_of(api, alice)["totals"]["orders"] == 0

    events = stack.client("events")
    bus_arn = events.describe_event_bus(Name=stack.provisioned["EventBus"].ref)["Arn"]
    archive_arn = events.describe_archive(ArchiveName=stack.provisioned["EventArchive"].ref)["ArchiveArn"]
    events.start_replay(ReplayName=f"lost-{first}", EventSourceArn=archive_arn, Destination={"Arn": bus_arn},
                        EventStartTime=datetime(2026, 1, 1, tzinfo=timezone.utc), EventEndTime=datetime.now(timezone.utc))
    while messages := sales_queue.receive_available():  # every sales event the archive holds, this test's among them
        assert lambdas.invoke("project_sales", sales_queue.event(messages)).payload == {"batchItemFailures": []}
        sales_queue.delete(messages)

    again = sales_of(api, alice)
    assert (again["totals"], again["products"]) == (live["totals"], live["products"])
