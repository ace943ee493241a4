"""The stream consumers as Lambda calls them (`app.publish_product_events`, with the app's
middleware) on a DynamoDB stream event, over in-memory services installed as the container's:
their partial batch response names the first change not published, so the event source mapping
retries from there; and the consumer of the mappings' on-failure queue (entrypoints/stream_events.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chalicelib.domain.errors import DependencyUnavailable, PoisonMessage
from chalicelib.domain.events import Change, EventSource
from tests.unit.entrypoints.invocations import errors, installed, invoke, sqs_event
from tests.unit.event_fakes import InMemoryChangeStream, InMemoryEventBus
from tests.unit.fakes import InMemoryTracer
from tests.unit.stream_records import change, order_image, product_image, stream_event

SHARD = "shardId-00000001"


@dataclass
class Container:
    bus: InMemoryEventBus
    stream: InMemoryChangeStream
    tracer: InMemoryTracer
    logged: list[logging.LogRecord]

    def put(self) -> list[str]:
        return [e.event_id for e in self.bus.events]

    def errors(self) -> list[str]:
        return errors(self.logged)


@pytest.fixture
def container() -> Iterator[Container]:
    """The container's services over an in-memory bus and stream, and what the app logs meanwhile."""
    bus, stream, tracer = InMemoryEventBus(), InMemoryChangeStream(), InMemoryTracer()
    with installed(tracer, event_bus=bus, change_stream=stream) as logged:
        yield Container(bus, stream, tracer, logged)


def created(change_id: str) -> Change:
    return change(None, product_image(), change_id)


def fell_low(change_id: str) -> Change:
    """Two events: ProductUpdated, then StockLow."""
    return change(product_image(stock=5), product_image(stock=4, version=2), change_id)


def renamed(change_id: str) -> Change:
    return change(product_image(), product_image(name="Cup", version=2), change_id)


def poison(change_id: str) -> Change:
    return change(product_image(), product_image(stock="ten"), change_id)


def test_a_batch_published_whole_reports_no_failure(container):
    event = stream_event([("100", created("c1")), ("200", fell_low("c2")), ("300", renamed("c3"))])

    answer = invoke("publish_product_events", event)

    assert answer == {"batchItemFailures": []}
    assert container.put() == ["c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow", "c3-ProductUpdated"]
    assert container.tracer.annotations["changes"] == 3 and container.tracer.annotations["published"] == 3


def test_a_poison_change_is_named_as_the_batchs_first_failure_and_nothing_after_it_is_published(container):
    event = stream_event([("100", created("c1")), ("200", poison("c2")), ("300", renamed("c3"))])

    answer = invoke("publish_product_events", event)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    assert container.put() == ["c1-ProductCreated"]


def test_a_record_that_holds_no_change_is_named_as_the_failure(container):
    event = stream_event([("100", created("c1")), ("200", renamed("c2"))])
    del event["Records"][1]["dynamodb"]["NewImage"], event["Records"][1]["dynamodb"]["OldImage"]

    answer = invoke("publish_product_events", event)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    assert container.put() == ["c1-ProductCreated"]


@pytest.mark.parametrize("refused_from, first_failure", [(0, "100"), (1, "200"), (2, "200"), (3, "300")])
def test_when_the_bus_refuses_an_event_the_record_of_its_change_is_the_first_failure(container, refused_from,
                                                                                    first_failure):
    container.bus.refuse_from = refused_from
    event = stream_event([("100", created("c1")), ("200", fell_low("c2")), ("300", renamed("c3"))])

    answer = invoke("publish_product_events", event)

    assert answer == {"batchItemFailures": [{"itemIdentifier": first_failure}]}


def test_the_mappings_retry_from_the_named_record_publishes_the_rest(container):
    records = [("100", created("c1")), ("200", fell_low("c2")), ("300", renamed("c3"))]
    container.bus.refuse_from = 1
    failed = invoke("publish_product_events", stream_event(records))["batchItemFailures"][0]["itemIdentifier"]
    container.bus.refuse_from = None

    retry = [(sequence, c) for sequence, c in records if int(sequence) >= int(failed)]
    answer = invoke("publish_product_events", stream_event(retry))

    assert answer == {"batchItemFailures": []}
    assert container.put() == ["c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow", "c3-ProductUpdated"]


def test_an_unreachable_bus_fails_the_invocation_so_the_whole_batch_is_retried(container):
    container.bus.unreachable = True

    with pytest.raises(DependencyUnavailable):
        invoke("publish_product_events", stream_event([("100", created("c1"))]))

    assert "invocation failed" in container.errors()


def test_a_record_without_a_sequence_number_fails_the_batch_after_the_records_before_it_are_published(container):
    event = stream_event([("100", created("c1")), ("200", renamed("c2")), ("300", renamed("c3"))])
    del event["Records"][1]["dynamodb"]["SequenceNumber"]

    with pytest.raises(PoisonMessage, match="SequenceNumber"):
        invoke("publish_product_events", event)

    assert container.put() == ["c1-ProductCreated"]


def test_the_orders_stream_is_published_as_order_events(container):
    confirmed = change(order_image("paid", "queued", "reserved"),
                       order_image("confirmed", "queued", "reserved", "paid"), "c1")

    answer = invoke("publish_order_events", stream_event([("100", confirmed)], table="orders"))

    assert answer == {"batchItemFailures": []}
    (event,) = container.bus.events
    assert (event.source, event.event_id) == (EventSource.ORDERS, "c1-OrderConfirmed")


@pytest.mark.parametrize("event", [{"hello": "world"}, {"Records": "nope"}, [], "text", None])
def test_an_event_that_is_not_a_stream_batch_is_answered_with_no_failure_and_logged(container, event):
    answer = invoke("publish_product_events", event)

    assert answer == {"batchItemFailures": []}
    assert container.errors() == ["not a DynamoDB stream event"]
    assert container.bus.events == []


def test_a_batch_of_changes_that_make_no_event_reports_no_failure(container):
    untouched = change(product_image(), product_image(version=2), "c1")

    assert invoke("publish_product_events", stream_event([("100", untouched)])) == {"batchItemFailures": []}
    assert container.bus.events == []


def test_the_events_carry_the_trace_header_of_the_write(container):
    traced = change(None, product_image(trace_header="Root=1-6b045119-d652ce8931010b71dce080f7;Sampled=1"), "c1")

    invoke("publish_product_events", stream_event([("100", traced)]))

    (event,) = container.bus.events
    assert event.trace_header == "Root=1-6b045119-d652ce8931010b71dce080f7;Sampled=1"


# The on-failure queue: what the mappings gave up on, read back from the stream


PRODUCTS_STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/products/stream/2026-11-23T12:00:00.000"


def on_failure_record(first: str, last: str) -> str:
    """Lambda's on-failure record for a stream batch (its DDBStreamBatchInfo names the batch)."""
    return json.dumps({
        "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2026-11-23T12:00:00.000Z",
        "DDBStreamBatchInfo": {"shardId": SHARD, "startSequenceNumber": first, "endSequenceNumber": last,
                               "approximateArrivalOfFirstRecord": "2026-11-23T12:00:00Z",
                               "approximateArrivalOfLastRecord": "2026-11-23T12:00:00Z", "batchSize": 2,
                               "streamArn": PRODUCTS_STREAM}})


def test_a_batch_the_mapping_gave_up_on_is_read_back_and_its_changes_published(container):
    container.stream.records[SHARD] = [("100", created("c1")), ("200", poison("c2")), ("300", renamed("c3"))]

    answer = invoke("recover_lost_changes", sqs_event(on_failure_record("100", "300")))

    assert answer == {"batchItemFailures": []}
    assert container.put() == ["c1-ProductCreated", "c3-ProductUpdated"]
    (summary,) = [r for r in container.logged if r.getMessage() == "a stream batch failed every retry"]
    assert {k: vars(summary)[k] for k in ("republished", "lost", "expired")} == {
        "republished": 2, "lost": 1, "expired": False}


def test_when_the_bus_still_refuses_the_message_is_retried(container):
    container.stream.records[SHARD] = [("100", created("c1"))]
    container.bus.refuse_from = 0

    answer = invoke("recover_lost_changes", sqs_event(on_failure_record("100", "100")))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


@pytest.mark.parametrize("body", ["not json", json.dumps({"requestContext": {}}),
                                  json.dumps({"DDBStreamBatchInfo": {"shardId": SHARD}})])
def test_a_message_that_is_not_an_on_failure_record_is_logged_and_dropped(container, body):
    answer = invoke("recover_lost_changes", sqs_event(body))

    assert answer == {"batchItemFailures": []}
    assert container.errors() == ["unreadable message in the domain events' failure queue, dropped"]
    assert container.bus.events == []
