"""The stack's event bus, provisioned from infra/resources.json into moto: its rules deliver each
domain event to the right queue (moto's own pattern matching), carrying the publisher's trace
header as AWSTraceHeader, as EventBridge does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.event_bus import pass_trace_headers
from devstack.provision import Provisioned

pytestmark = pytest.mark.timeout(60)

QUEUES = ("SalesEventsQueue", "LowStockQueue")
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def trace_headers_passed() -> Iterator[None]:
    undo = pass_trace_headers()
    yield
    undo()


def _entry(bus: str, source: str, detail_type: str, **detail: Any) -> dict[str, Any]:
    return {"EventBusName": bus, "Source": source, "DetailType": detail_type,
            "Detail": json.dumps({"event_id": str(uuid.uuid4()), **detail})}


def _deliveries(provisioned: Provisioned, aws: Callable[[str], Any]) -> dict[str, list[dict[str, Any]]]:
    """Everything the rules' queues hold now, received and deleted, by queue."""
    sqs = aws("sqs")
    found: dict[str, list[dict[str, Any]]] = {}
    for queue in QUEUES:
        url = provisioned.queue_url(queue)
        found[queue] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                           MessageSystemAttributeNames=["All"]).get("Messages", [])
            if not messages:
                break
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            found[queue].extend(messages)
    return found


def _routed(provisioned: Provisioned, aws: Callable[[str], Any], *entries: dict[str, Any]) -> dict[str, list[str]]:
    """Put `entries` on the bus; the detail-types (and `changed`) each queue received."""
    _deliveries(provisioned, aws)
    response = aws("events").put_events(Entries=list(entries))
    assert response["FailedEntryCount"] == 0
    routed: dict[str, list[str]] = {}
    for queue, messages in _deliveries(provisioned, aws).items():
        routed[queue] = sorted(
            json.loads(m["Body"])["detail-type"] + "".join(f"/{c}" for c in json.loads(m["Body"])["detail"].get("changed", []))
            for m in messages)
    return routed


def test_order_confirmations_and_cancellations_go_to_the_sales_queue_and_nothing_else_of_orders_does(
        provisioned: Provisioned, aws: Callable[[str], Any]) -> None:
    bus = provisioned["EventBus"].ref

    routed = _routed(provisioned, aws,
                     _entry(bus, "storefront.orders", "OrderConfirmed", order_id="o-1"),
                     _entry(bus, "storefront.orders", "OrderCancelled", order_id="o-2"),
                     _entry(bus, "storefront.orders", "PaymentFailed", order_id="o-3"),
                     _entry(bus, "storefront.products", "OrderConfirmed", order_id="o-4"))

    assert routed == {"SalesEventsQueue": ["OrderCancelled", "OrderConfirmed"], "LowStockQueue": []}


def test_product_changes_reach_the_sales_queue_only_when_their_changed_fields_include_the_name(
        provisioned: Provisioned, aws: Callable[[str], Any]) -> None:
    bus = provisioned["EventBus"].ref

    # `"changed": ["name"]` matches an event whose `changed` array contains "name" among others.
    routed = _routed(provisioned, aws,
                     _entry(bus, "storefront.products", "ProductCreated", changed=["name", "price_cents", "stock"]),
                     _entry(bus, "storefront.products", "ProductUpdated", changed=["price_cents", "name"]),
                     _entry(bus, "storefront.products", "ProductUpdated", changed=["price_cents"]),
                     _entry(bus, "storefront.products", "ProductUpdated", changed=[]),
                     _entry(bus, "storefront.products", "ProductUpdated", changed=["names"]),
                     _entry(bus, "storefront.products", "ProductDeleted", changed=["name"]))

    assert routed == {"SalesEventsQueue": ["ProductCreated/name/price_cents/stock", "ProductUpdated/price_cents/name"],
                      "LowStockQueue": []}


def test_a_low_stock_event_goes_to_the_low_stock_queue_only(provisioned: Provisioned, aws: Callable[[str], Any]) -> None:
    bus = provisioned["EventBus"].ref

    routed = _routed(provisioned, aws,
                     _entry(bus, "storefront.products", "StockLow", product_id="p-1", stock=4),
                     _entry(bus, "storefront.orders", "StockLow", product_id="p-2", stock=4))

    assert routed == {"SalesEventsQueue": [], "LowStockQueue": ["StockLow"]}


def test_an_entrys_trace_header_reaches_the_target_as_aws_trace_header_with_the_event_as_eventbridge_sends_it(
        provisioned: Provisioned, aws: Callable[[str], Any], trace_headers_passed: None) -> None:
    bus = provisioned["EventBus"].ref
    _deliveries(provisioned, aws)

    aws("events").put_events(Entries=[
        {**_entry(bus, "storefront.orders", "OrderConfirmed", order_id="traced"), "TraceHeader": TRACE_HEADER},
        _entry(bus, "storefront.orders", "OrderConfirmed", order_id="untraced"),
    ])
    messages = {json.loads(m["Body"])["detail"]["order_id"]: m
                for m in _deliveries(provisioned, aws)["SalesEventsQueue"]}

    assert messages["traced"]["Attributes"]["AWSTraceHeader"] == TRACE_HEADER
    assert "AWSTraceHeader" not in messages["untraced"]["Attributes"]
    event = json.loads(messages["traced"]["Body"])
    assert {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"} <= set(event)
    assert event["account"] == provisioned.stack.account_id


def test_without_the_patch_moto_drops_the_trace_header(provisioned: Provisioned, aws: Callable[[str], Any]) -> None:
    bus = provisioned["EventBus"].ref
    _deliveries(provisioned, aws)

    aws("events").put_events(Entries=[
        {**_entry(bus, "storefront.orders", "OrderConfirmed", order_id="traced"), "TraceHeader": TRACE_HEADER}])
    (message,) = _deliveries(provisioned, aws)["SalesEventsQueue"]

    # What pass_trace_headers is for: if moto starts passing the header on, it can go.
    assert "AWSTraceHeader" not in message["Attributes"]
