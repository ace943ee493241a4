"""The orders table's stream publisher while EventBridge fails: whole PutEvents calls answered 500,
and calls that put some entries and refuse others (PutEvents answers per entry). The publisher
must answer with the first change it did not publish, so that the stream's event source mapping
retries from there (and no later change overtakes it); what a retry puts again reaches the sales
read model, which counts each fact once.

Each invocation below is one the mapping makes: the batch, then the batch from the change the
answer named.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.integration.app.events_helpers import stream_event
from tests.integration.app.helpers import PRODUCT, body_of, create
from tests.integration.app.orders_helpers import place, read_order
from tests.integration.faults.injection import Faults, app_clients
from tests.integration.faults.sagas import SagaDriver
from tests.integration.faults.scenarios import queued_events, sales_of, table_stream

pytestmark = pytest.mark.timeout(180)

PUBLISHER = "publish_order_events"
QUANTITIES = (1, 2, 3, 1)
PUT_EVENTS_ATTEMPTS = 4  # chalicelib/adapters/eventbridge.py: a call and its three retries


def confirming(records: list[dict[str, Any]]) -> list[int]:
    """Indexes of the records that moved an order to `confirmed` (the changes that make events here)."""
    def status(image: dict[str, Any] | None) -> str | None:
        return None if image is None else image["status"]["S"]

    return [i for i, r in enumerate(records)
            if status(r["dynamodb"].get("NewImage")) == "confirmed" != status(r["dynamodb"].get("OldImage"))]


def confirmations_queued(world: Any) -> Counter[str]:
    """The OrderConfirmed events in the sales queue, by order (the messages are left there)."""
    return Counter(e["detail"]["order_id"] for e in queued_events(world, "project_sales")
                   if e["detail-type"] == "OrderConfirmed")


def test_a_publisher_the_bus_fails_names_its_first_unpublished_change_and_its_retries_count_each_sale_once(world):
    seller, buyer = world.new_user(), world.new_user()
    orders_stream = table_stream(world, "OrdersTable")
    product_id = body_of(create(world.api, seller, {**PRODUCT, "name": "Vase", "stock": 20}))["id"]
    order_ids = [body_of(place(world.api, buyer, product_id, q))["order_id"] for q in QUANTITIES]
    world.delivery.drain(["consume_orders"])
    SagaDriver(world.api_app, world.client("stepfunctions"), world.stack.saga_arn).run(order_ids)
    assert {read_order(world.api, buyer, o)["status"] for o in order_ids} == {"confirmed"}
    records = orders_stream.new(order_ids)
    confirmed = confirming(records)
    assert len(confirmed) == len(order_ids)
    by_order = [records[i]["dynamodb"]["Keys"]["id"]["S"] for i in confirmed]  # in the stream's order

    def sequence(index: int) -> str:
        return records[index]["dynamodb"]["SequenceNumber"]

    def invoke_from(first: int) -> Any:
        return world.delivery.invoke(PUBLISHER, stream_event(records[first:], orders_stream.arn))

    faults = Faults(PUBLISHER)
    with faults.installed(app_clients()):
        # Every attempt of the first call answered 500: nothing is on the bus. The changes before
        # the first confirmation make no event, so they are done: the answer names the confirmation.
        faults.fail_first("events", {"PutEvents"}, PUT_EVENTS_ATTEMPTS, "InternalException", 500)
        first = invoke_from(0)
        assert first == {"batchItemFailures": [{"itemIdentifier": sequence(confirmed[0])}]}
        assert confirmations_queued(world) == Counter()

        # From there: the second confirmation's entry refused in the call, then in each retry;
        # the others of the call are put.
        faults.refuse_entries({1}, 1)
        faults.refuse_entries({0}, PUT_EVENTS_ATTEMPTS - 1)
        second = invoke_from(confirmed[0])
        assert second == {"batchItemFailures": [{"itemIdentifier": sequence(confirmed[1])}]}
        assert confirmations_queued(world) == Counter({by_order[0]: 1, by_order[2]: 1, by_order[3]: 1})

        # From there: two 500s, within the publisher's own retries: the rest is published.
        faults.fail_first("events", {"PutEvents"}, PUT_EVENTS_ATTEMPTS - 2, "ServiceUnavailable", 503)
        assert invoke_from(confirmed[1]) == {"batchItemFailures": []}

    assert faults.injected == Counter({"PutEvents:InternalException": PUT_EVENTS_ATTEMPTS,
                                       "PutEvents:InternalFailure": PUT_EVENTS_ATTEMPTS,
                                       "PutEvents:ServiceUnavailable": PUT_EVENTS_ATTEMPTS - 2})
    # Every confirmation reached the bus; those a retry put again are there twice.
    assert confirmations_queued(world) == Counter({by_order[0]: 1, by_order[1]: 1, by_order[2]: 2, by_order[3]: 2})
    world.delivery.drain(["project_sales"])
    units = sum(QUANTITIES)
    assert sales_of(world, seller)["totals"] == {"orders": len(order_ids), "units": units,
                                                 "revenue_cents": units * PRODUCT["price_cents"]}
