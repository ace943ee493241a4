"""Publishing the tables' changes as domain events, and recovering the batches the stream gave up
on, over an in-memory bus and stream (services/events.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chalicelib.bootstrap import Services, bootstrap
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.events import Change, EventSource
from chalicelib.services.events import Recovered, StreamBatch
from tests.unit.event_fakes import InMemoryChangeStream, InMemoryEventBus
from tests.unit.fakes import fake_clients, fake_settings
from tests.unit.stream_records import ORDER_ID, change, order_image, product_image

PRODUCTS_STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/products/stream/2026-11-23T12:00:00.000"
ORDERS_STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-23T12:00:00.000"
SHARD = "shardId-00000001"


@dataclass
class World:
    bus: InMemoryEventBus
    stream: InMemoryChangeStream
    services: Services

    def put(self) -> list[str]:
        """The events on the bus, by id."""
        return [e.event_id for e in self.bus.events]


@pytest.fixture
def world() -> World:
    bus, stream = InMemoryEventBus(), InMemoryChangeStream()
    services = bootstrap(fake_settings(orders_table="orders"),
                         clients=fake_clients(event_bus=bus, change_stream=stream))
    return World(bus, stream, services)


def created(change_id: str) -> Change:
    """One event: ProductCreated."""
    return change(None, product_image(), change_id)


def fell_low(change_id: str) -> Change:
    """Two events: ProductUpdated, then StockLow."""
    return change(product_image(stock=5), product_image(stock=4, version=2), change_id)


def renamed(change_id: str) -> Change:
    """One event: ProductUpdated."""
    return change(product_image(), product_image(name="Cup", version=2), change_id)


def poison(change_id: str) -> Change:
    return change(product_image(), product_image(stock="ten"), change_id)


def untouched(change_id: str) -> Change:
    """No event: a write that changes none of the product's fields."""
    return change(product_image(), product_image(version=2), change_id)


# ChangePublisher: a shard's changes, in order


def test_every_change_is_published_in_order_and_the_whole_batch_is_done(world):
    done = world.services.publisher.publish(EventSource.PRODUCTS, [created("c1"), fell_low("c2"), renamed("c3")])

    assert done == 3
    assert world.put() == ["c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow", "c3-ProductUpdated"]


def test_changes_that_make_no_event_are_done_too():
    bus = InMemoryEventBus()
    publisher = bootstrap(fake_settings(), clients=fake_clients(event_bus=bus)).publisher

    assert publisher.publish(EventSource.PRODUCTS, [untouched("c1"), untouched("c2")]) == 2
    assert bus.events == []


def test_a_poison_change_in_the_middle_stops_the_batch_there_after_publishing_the_changes_before_it(world):
    done = world.services.publisher.publish(EventSource.PRODUCTS,
                                            [created("c1"), fell_low("c2"), poison("c3"), renamed("c4")])

    assert done == 2
    assert world.put() == ["c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow"]  # none of c4's


def test_a_record_that_is_not_a_change_stops_the_batch_as_a_poison_change_does(world):
    done = world.services.publisher.publish(EventSource.PRODUCTS, [created("c1"), None, renamed("c3")])

    assert done == 1
    assert world.put() == ["c1-ProductCreated"]


def test_a_poison_first_change_publishes_nothing(world):
    assert world.services.publisher.publish(EventSource.PRODUCTS, [poison("c1"), created("c2")]) == 0
    assert world.bus.events == []


@pytest.mark.parametrize("refused_from, done", [
    (0, 0),  # c1's only event
    (1, 1),  # c2's first event
    (2, 1),  # c2's second event: c2 is not done though its first event is on the bus
    (3, 2),  # c3's event
    (None, 3),
])
def test_when_the_bus_refuses_from_an_event_the_change_owning_it_is_the_first_not_done(world, refused_from, done):
    world.bus.refuse_from = refused_from

    assert world.services.publisher.publish(EventSource.PRODUCTS, [created("c1"), fell_low("c2"), renamed("c3")]) == done


def test_the_first_change_not_done_is_the_earlier_of_a_refused_event_and_a_poison_change(world):
    world.bus.refuse_from = 1

    done = world.services.publisher.publish(EventSource.PRODUCTS, [created("c1"), renamed("c2"), poison("c3")])

    assert done == 1


def test_a_retry_from_the_first_change_not_done_puts_its_events_again_under_the_same_ids(world):
    changes = [created("c1"), fell_low("c2"), renamed("c3")]
    world.bus.refuse_from = 2
    done = world.services.publisher.publish(EventSource.PRODUCTS, changes)
    world.bus.refuse_from = None

    assert world.services.publisher.publish(EventSource.PRODUCTS, changes[done:]) == 2

    # c2's ProductUpdated is on the bus twice, under one id: its consumers count it once.
    assert world.put() == ["c1-ProductCreated", "c2-ProductUpdated",
                           "c2-ProductUpdated", "c2-StockLow", "c3-ProductUpdated"]


def test_an_unreachable_bus_fails_the_whole_batch(world):
    world.bus.unreachable = True

    with pytest.raises(DependencyUnavailable):
        world.services.publisher.publish(EventSource.PRODUCTS, [created("c1")])


def test_order_changes_are_published_as_order_events(world):
    confirmed = change(order_image("paid", "queued", "reserved"), order_image("confirmed", "queued", "reserved", "paid"),
                       "c1")

    assert world.services.publisher.publish(EventSource.ORDERS, [confirmed]) == 1
    (event,) = world.bus.events
    assert (event.source, event.detail["order_id"]) == (EventSource.ORDERS, ORDER_ID)


# LostChanges: a batch the stream gave up on, read back and published again


def batch(first: int, last: int, stream_arn: str = PRODUCTS_STREAM) -> StreamBatch:
    return StreamBatch(stream_arn=stream_arn, shard_id=SHARD, first_sequence=str(first), last_sequence=str(last))


def test_a_lost_batchs_changes_are_read_back_and_their_events_published_in_order(world):
    world.stream.records[SHARD] = [("100", created("c1")), ("200", fell_low("c2")), ("300", renamed("c3"))]

    recovered = world.services.lost_changes.recover(batch(100, 300))

    assert recovered == Recovered(published=3, lost=0)
    assert world.put() == ["c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow", "c3-ProductUpdated"]


def test_only_the_batchs_own_records_are_published(world):
    world.stream.records[SHARD] = [("100", created("c1")), ("200", fell_low("c2")), ("300", renamed("c3"))]

    assert world.services.lost_changes.recover(batch(200, 200)) == Recovered(published=1, lost=0)
    assert world.put() == ["c2-ProductUpdated", "c2-StockLow"]


def test_a_poison_change_is_counted_lost_and_the_others_are_published(world):
    world.stream.records[SHARD] = [("100", created("c1")), ("200", poison("c2")), ("300", None),
                                   ("400", renamed("c4"))]

    recovered = world.services.lost_changes.recover(batch(100, 400))

    assert recovered == Recovered(published=2, lost=2)
    assert world.put() == ["c1-ProductCreated", "c4-ProductUpdated"]


def test_a_batch_the_stream_no_longer_holds_is_reported_expired_and_nothing_is_published(world):
    world.stream.records[SHARD] = [("100", created("c1"))]
    world.stream.expired = True

    assert world.services.lost_changes.recover(batch(100, 100)) == Recovered(published=0, lost=0, expired=True)
    assert world.bus.events == []


def test_a_batch_of_a_stream_of_no_table_of_ours_is_reported_expired(world):
    world.stream.records[SHARD] = [("100", created("c1"))]
    elsewhere = "arn:aws:dynamodb:us-east-1:123456789012:table/someone-elses/stream/2026-11-23T12:00:00.000"

    assert world.services.lost_changes.recover(batch(100, 100, elsewhere)).expired
    assert world.bus.events == []


def test_a_lost_batch_of_the_orders_stream_is_published_as_order_events(world):
    confirmed = change(order_image("paid", "queued", "reserved"), order_image("confirmed", "queued", "reserved", "paid"),
                       "c1")
    world.stream.records[SHARD] = [("100", confirmed)]

    assert world.services.lost_changes.recover(batch(100, 100, ORDERS_STREAM)) == Recovered(published=1, lost=0)
    assert world.put() == ["c1-OrderConfirmed"]


def test_when_the_bus_refuses_again_the_message_fails_and_its_retry_publishes_everything(world):
    world.stream.records[SHARD] = [("100", created("c1")), ("200", fell_low("c2"))]
    world.bus.refuse_from = 2  # c2's StockLow

    with pytest.raises(DependencyUnavailable):
        world.services.lost_changes.recover(batch(100, 200))
    world.bus.refuse_from = None
    recovered = world.services.lost_changes.recover(batch(100, 200))

    assert recovered == Recovered(published=2, lost=0)
    assert set(world.put()) == {"c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow"}
    assert world.put()[-3:] == ["c1-ProductCreated", "c2-ProductUpdated", "c2-StockLow"]


def test_an_unreachable_bus_fails_the_message(world):
    world.stream.records[SHARD] = [("100", created("c1"))]
    world.bus.unreachable = True

    with pytest.raises(DependencyUnavailable):
        world.services.lost_changes.recover(batch(100, 100))
