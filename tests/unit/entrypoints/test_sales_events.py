"""The read side's queue consumers as Lambda calls them (entrypoints/sales_events.py): each record is
an EventBridge event as a rule's SQS target receives it; a record that fails is named in the
partial batch response, so only it is retried (and, in the end, kept in the queue's DLQ)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chalicelib.domain.events import DomainEvent, EventSource, events_of
from chalicelib.domain.orders import HistoryEntry, Order, OrderStatus
from chalicelib.services.low_stock import Notified
from tests.unit.entrypoints.invocations import errors, installed, invoke, sqs_event
from tests.unit.event_fakes import InMemorySalesProjection, InMemorySalesSources
from tests.unit.fakes import FakeClock, InMemoryDirectory, InMemoryMailer
from tests.unit.stream_records import (
    AT, BUYER, ORDER_ID, PRODUCT_ID, SELLER, change, order_image, product_image, target_message,
)

SELLER_EMAIL = "seller@example.com"
OTHER_ORDER_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAX"


@dataclass
class Container:
    clock: FakeClock
    sales: InMemorySalesProjection
    mailer: InMemoryMailer
    orders: dict[str, Order]  # the orders table, as the rebuild scans it
    logged: list[logging.LogRecord]


@pytest.fixture
def container() -> Iterator[Container]:
    clock = FakeClock()
    sales, mailer = InMemorySalesProjection(clock), InMemoryMailer()
    orders: dict[str, Order] = {}
    with installed(clock=clock, sales=sales, mailer=mailer, directory=InMemoryDirectory({SELLER: SELLER_EMAIL}),
                   sales_sources=InMemorySalesSources(lambda: dict(orders))) as logged:
        yield Container(clock, sales, mailer, orders, logged)


def confirmed(order_id: str = ORDER_ID, quantity: int = 2) -> DomainEvent:
    """The OrderConfirmed of an order of `quantity` mugs at 1200 cents."""
    (event,) = events_of(EventSource.ORDERS, change(
        order_image("paid", "queued", "reserved", id=order_id),
        order_image("confirmed", "queued", "reserved", "paid", id=order_id, quantity=quantity,
                    amount_cents=1200 * quantity),
        f"change-of-{order_id}"))
    return event


def stock_low(change_id: str = "c-1") -> DomainEvent:
    (_, event) = events_of(EventSource.PRODUCTS, change(product_image(stock=5), product_image(stock=4, version=2),
                                                        change_id))
    return event


def report() -> tuple[int, int, int]:
    from chalicelib.bootstrap import services

    sales = services().sales.report(SELLER)
    return sales.orders, sales.units, sales.revenue_cents


# project_sales


def test_a_batch_of_order_events_is_counted_and_acknowledged(container):
    answer = invoke("project_sales", sqs_event(target_message(confirmed(ORDER_ID, 2)),
                                               target_message(confirmed(OTHER_ORDER_ID, 1))))

    assert answer == {"batchItemFailures": []}
    assert report() == (2, 3, 3600)


def test_an_event_twice_in_one_batch_counts_once(container):
    message = target_message(confirmed())

    assert invoke("project_sales", sqs_event(message, message)) == {"batchItemFailures": []}
    assert report() == (1, 2, 2400) and container.sales.writes == 2


@pytest.mark.parametrize("body", [
    "not json",
    json.dumps({"detail-type": "OrderConfirmed"}),
    json.dumps({"detail-type": "OrderConfirmed", "detail": "text"}),
    json.dumps({"detail-type": "PaymentFailed", "detail": {}}),
])
def test_a_record_that_is_not_an_event_the_model_counts_fails_alone(container, body):
    answer = invoke("project_sales", sqs_event(target_message(confirmed()), body))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert report() == (1, 2, 2400)


def test_an_order_event_without_its_seller_fails_to_be_kept_in_the_dead_letter_queue(container):
    event = confirmed()
    body = json.loads(target_message(event))
    del body["detail"]["seller"]

    answer = invoke("project_sales", sqs_event(json.dumps(body)))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert container.sales.rows == {}


# email_low_stock


def test_a_stock_low_event_emails_the_seller_once_however_often_it_is_delivered(container):
    message = target_message(stock_low())

    first = invoke("email_low_stock", sqs_event(message, message))
    again = invoke("email_low_stock", sqs_event(message))

    assert first == again == {"batchItemFailures": []}
    (mail,) = container.mailer.sent
    assert mail.to == (SELLER_EMAIL,) and PRODUCT_ID in mail.text and "Mug" in mail.text
    outcomes = [vars(r).get("outcome") for r in container.logged if r.getMessage() == "low stock notified"]
    assert outcomes == [Notified.SENT, Notified.ALREADY_SENT, Notified.ALREADY_SENT]


def test_when_mail_cannot_be_sent_the_record_is_retried_and_its_retry_sends(container):
    message = target_message(stock_low())
    container.mailer.failing = True

    assert invoke("email_low_stock", sqs_event(message)) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    container.mailer.failing = False
    assert invoke("email_low_stock", sqs_event(message)) == {"batchItemFailures": []}

    assert len(container.mailer.sent) == 1


# What every delivery failed: logged whole, acknowledged


@pytest.mark.parametrize("function, event, consequence", [
    ("sales_dead_letter", confirmed, "the sales read model misses it; make rebuild-sales restores it"),
    ("low_stock_dead_letter", stock_low, "its seller was not e-mailed"),
])
def test_a_dead_letter_is_logged_whole_with_what_it_means_and_acknowledged(container, function, event, consequence):
    message = target_message(event())

    answer = invoke(function, sqs_event(message, receive_count=5))

    assert answer == {"batchItemFailures": []}
    assert errors(container.logged) == [f"event failed every delivery: {consequence}"]
    (record,) = [r for r in container.logged if r.levelno >= logging.ERROR]
    assert vars(record)["body"] == message and vars(record)["receive_count"] == "5"


# rebuild_sales


def test_the_rebuild_function_counts_the_orders_again_and_says_what_it_did(container):
    container.orders[ORDER_ID] = Order(id=ORDER_ID, buyer=BUYER, product_id=PRODUCT_ID, quantity=2, status=OrderStatus.CONFIRMED,
                  created_at=AT, updated_at=AT, amount_cents=2400, currency="EUR", seller=SELLER,
                  product_name="Mug", history=(HistoryEntry(OrderStatus.QUEUED, AT),
                                               HistoryEntry(OrderStatus.CONFIRMED, AT)))

    rebuilt = invoke("rebuild_sales", {})

    assert {k: rebuilt[k] for k in ("orders", "facts")} == {"orders": 1, "facts": 1}
    assert report() == (1, 2, 2400)
