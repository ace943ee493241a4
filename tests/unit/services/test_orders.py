"""OrderService and OrderConsumer, bootstrapped over in-memory fakes: placing, reading, listing,
and reserving orders (the saga that follows is tests/unit/services/test_order_saga.py's)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.bootstrap import Services, bootstrap
from chalicelib.domain.commands import PlaceOrder, parse_command
from chalicelib.domain.errors import DependencyUnavailable, Forbidden, IdempotencyConflict, InvalidInput, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.orders import (
    OUT_OF_STOCK, PRODUCT_NOT_FOUND, QUEUED, REJECTED, RESERVED, Offer, OrderPlaced, WriteOutcome,
)
from chalicelib.domain.payments import PaymentStatus
from chalicelib.domain.products import Product
from tests.unit.fakes import (
    FakeClock, InMemoryIdempotencyStore, InMemoryOrderQueue, InMemoryOrderRepository, InMemoryOrderSagas,
    InMemoryProductRepository, InMemoryTracer, SequentialIds, fake_clients, fake_settings,
)

ALICE = Caller(sub="alice-sub", username="alice")
BOB = Caller(sub="bob-sub", username="bob")
SETTINGS = fake_settings(idempotency_ttl_hours=48)
TTL = timedelta(hours=SETTINGS.idempotency_ttl_hours)
ALREADY_APPLIED = WriteOutcome.ALREADY_APPLIED
TRACE_HEADER = "Root=1-6b045119-d652ce8931010b71dce080f7;Parent=53995c3f42cd8ad8;Sampled=1"
CARD = "pm_card_visa"


class RacingOrders(InMemoryOrderRepository):
    """Others act between the consumer's steps: the next of `before_read` runs before each read
    of a product's offer, the next of `before_write` before each reserving write. `reads` are the
    stocks the single reads found; `reserve_attempts` counts the reserving writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_read: list[Callable[[], None]] = []
        self.before_write: list[Callable[[], None]] = []
        self.reads: list[int | None] = []
        self.reserve_attempts = 0

    def offer_of(self, product_id: str) -> Offer | None:
        if self.before_read:
            self.before_read.pop(0)()
        offer = super().offer_of(product_id)
        self.reads.append(None if offer is None else offer.stock)
        return offer

    def reserve(self, placed: OrderPlaced, offer: Offer, now: Any) -> WriteOutcome:
        self.reserve_attempts += 1
        if self.before_write:
            self.before_write.pop(0)()
        return super().reserve(placed, offer, now)


class World:
    """The order service and consumer wired to fakes, with the fakes in reach."""

    def __init__(self, queue: InMemoryOrderQueue | None = None) -> None:
        self.clock = FakeClock()
        self.ids = SequentialIds()
        self.records = InMemoryIdempotencyStore()
        self.products = InMemoryProductRepository(self.records, self.clock)
        self.orders = RacingOrders(self.products, self.records, self.clock)
        self.queue = queue or InMemoryOrderQueue()
        self.sagas = InMemoryOrderSagas()
        services = self.wired(self.orders)
        self.service = services.orders
        self.consumer = services.order_consumer

    def wired(self, orders: InMemoryOrderRepository) -> Services:
        """The services over `orders` and this world's other fakes, traced under TRACE_HEADER."""
        clients = fake_clients(clock=self.clock, idempotency=self.records, products=self.products, orders=orders,
                               order_queue=self.queue, order_sagas=self.sagas)
        return bootstrap(SETTINGS, clients=clients, clock=self.clock, ids=self.ids,
                         tracer=InMemoryTracer(header=TRACE_HEADER))

    def product(self, stock: int) -> str:
        product_id = self.ids()
        self.products.add(Product(id=product_id, owner="seller-sub", name="Mug", description="",
                                  price_cents=1200, currency="EUR", stock=stock, version=1,
                                  created_at=self.clock(), updated_at=self.clock()))
        return product_id

    def stock(self, product_id: str) -> int:
        return self.products.get(product_id).stock

    def set_stock(self, product_id: str, stock: int) -> None:
        self.change_product(product_id, stock=stock)

    def change_product(self, product_id: str, **changes: Any) -> None:
        product = self.products.get(product_id)
        self.products.items[product_id] = dataclasses.replace(product, **changes, version=product.version + 1)

    def place(self, product_id: str, quantity: int = 1, *, caller: Caller = ALICE, key: str | None = None,
              body: dict[str, Any] | None = None) -> Any:
        raw = body or {"product_id": product_id, "quantity": quantity, "payment_method": CARD}
        return self.service.place(caller, parse_command(PlaceOrder, raw), raw_body=raw, idempotency_key=key)

    def deliver_all(self) -> list[str]:
        """Apply every message sent so far, as the consumer receives them; their outcomes."""
        sent, self.queue.sent = self.queue.sent, []
        return [self.consumer.apply(placed) for placed, _ in sent]

    def deliver_batch(self) -> list[str]:
        """Apply every message sent so far as one batch: the offers read once for all of them."""
        sent, self.queue.sent = self.queue.sent, []
        offers = self.consumer.read_offers(placed for placed, _ in sent)
        return [self.consumer.apply(placed, offers) for placed, _ in sent]

    def status(self, order_id: str) -> tuple[str, str | None]:
        order = self.orders.get(order_id)
        return order.status, order.reason


@pytest.fixture
def world() -> World:
    return World()


# Placing


def test_a_placed_order_is_recorded_queued_and_sent_once_with_the_trace_header(world):
    product_id = world.product(stock=5)

    placed = world.place(product_id, 2)

    assert (placed.status, placed.replayed) == (202, False)
    order_id = placed.body["order_id"]
    assert placed.body == {"order_id": order_id, "status": "queued"}
    order = world.orders.get(order_id)
    assert (order.buyer, order.product_id, order.quantity, order.status) == (ALICE.sub, product_id, 2, QUEUED)
    assert (order.payment_method, order.payment.status, order.amount_cents) == (CARD, PaymentStatus.NONE, None)
    assert [entry.status for entry in order.history] == [QUEUED]
    assert world.queue.sent == [(OrderPlaced(order_id, ALICE.sub, product_id, 2), TRACE_HEADER)]
    assert world.stock(product_id) == 5  # placing only enqueues: the consumer decides
    assert world.sagas.started == {}


def test_placing_does_not_look_at_the_product_the_consumer_rejects_it_later(world):
    unknown = world.ids()

    order_id = world.place(unknown).body["order_id"]

    assert world.status(order_id) == (QUEUED, None)
    assert world.deliver_all() == [REJECTED]
    assert world.status(order_id) == (REJECTED, PRODUCT_NOT_FOUND)


def test_a_replay_with_the_same_key_and_body_answers_the_same_order_and_records_nothing_new(world):
    product_id = world.product(stock=5)
    first = world.place(product_id, key="k1")
    world.deliver_all()
    world.clock.advance(timedelta(minutes=5))

    again = world.place(product_id, key="k1")

    assert again.replayed and (again.status, again.body) == (202, first.body)
    assert list(world.orders.items) == [first.body["order_id"]]
    assert world.queue.sent == []  # already reserved: nothing to send again
    assert world.stock(product_id) == 4


def test_a_replay_of_an_order_still_queued_sends_it_again(world):
    product_id = world.product(stock=5)
    first = world.place(product_id, key="k1")

    world.place(product_id, key="k1")

    order_id = first.body["order_id"]
    assert [placed.order_id for placed, _ in world.queue.sent] == [order_id, order_id]
    assert world.deliver_all() == [RESERVED, ALREADY_APPLIED]  # the consumer applies it once
    assert world.stock(product_id) == 4
    assert list(world.sagas.started) == [order_id]  # and its saga is started once


def test_a_replay_matches_the_body_by_content_not_by_key_order(world):
    product_id = world.product(stock=5)
    first = world.place(product_id, 2, key="k1")

    again = world.place(product_id, key="k1", body={"payment_method": CARD, "quantity": 2, "product_id": product_id})

    assert again.replayed and again.body == first.body


def test_the_same_key_with_another_body_is_a_conflict_and_records_and_sends_nothing(world):
    product_id = world.product(stock=5)
    world.place(product_id, 1, key="k1")
    world.deliver_all()

    with pytest.raises(IdempotencyConflict):
        world.place(product_id, 2, key="k1")

    assert len(world.orders.items) == 1 and world.queue.sent == []


def test_another_buyer_using_the_same_key_places_an_order_of_their_own(world):
    product_id = world.product(stock=5)
    alices = world.place(product_id, key="shared")

    bobs = world.place(product_id, caller=BOB, key="shared")

    assert not bobs.replayed and bobs.body["order_id"] != alices.body["order_id"]
    assert world.orders.get(bobs.body["order_id"]).buyer == BOB.sub


def test_an_expired_key_places_a_new_order(world):
    product_id = world.product(stock=5)
    first = world.place(product_id, key="k1")
    world.clock.advance(TTL)

    fresh = world.place(product_id, key="k1")

    assert not fresh.replayed and fresh.body["order_id"] != first.body["order_id"]


def test_when_the_queue_fails_without_a_key_the_order_is_forgotten_and_the_caller_told_to_retry(world):
    product_id = world.product(stock=5)
    world.queue.failing = True

    with pytest.raises(DependencyUnavailable):
        world.place(product_id)

    assert world.orders.items == {} and world.queue.sent == []


def test_when_the_queue_fails_with_a_key_a_retry_with_the_key_sends_the_same_order(world):
    product_id = world.product(stock=5)
    world.queue.failing = True
    with pytest.raises(DependencyUnavailable):
        world.place(product_id, key="k1")
    (order_id,) = world.orders.items
    world.queue.failing = False

    retried = world.place(product_id, key="k1")

    assert retried.replayed and retried.body["order_id"] == order_id
    assert [placed.order_id for placed, _ in world.queue.sent] == [order_id]
    assert world.deliver_all() == [RESERVED]


class LostAnswerQueue(InMemoryOrderQueue):
    """SQS took the message but the answer never came back: the send raises all the same.
    `meanwhile` runs before it raises (the consumer may already have the message)."""

    def __init__(self, meanwhile: Callable[[OrderPlaced], None] = lambda placed: None) -> None:
        super().__init__()
        self.meanwhile = meanwhile

    def send(self, placed: OrderPlaced, trace_header: str | None) -> None:
        self.sent.append((placed, trace_header))
        self.meanwhile(placed)
        raise DependencyUnavailable("the order could not be queued: read timeout")


def test_a_message_of_an_order_the_caller_was_told_failed_is_ignored_by_the_consumer():
    world = World(queue=LostAnswerQueue())
    product_id = world.product(stock=5)
    with pytest.raises(DependencyUnavailable):
        world.place(product_id)

    assert world.deliver_all() == [ALREADY_APPLIED]

    assert world.orders.items == {} and world.stock(product_id) == 5
    assert world.sagas.started == {}


def test_an_order_the_consumer_applied_before_the_send_failed_is_accepted_not_refused():
    queue = LostAnswerQueue()
    world = World(queue=queue)
    queue.meanwhile = world.consumer.apply
    product_id = world.product(stock=5)

    placed = world.place(product_id)

    assert placed.status == 202
    assert world.status(placed.body["order_id"]) == (RESERVED, None)
    assert world.stock(product_id) == 4
    assert list(world.sagas.started) == [placed.body["order_id"]]


# Reading


def test_the_buyer_reads_their_order(world):
    product_id = world.product(stock=5)
    order_id = world.place(product_id, 3).body["order_id"]

    order = world.service.get(ALICE, order_id)

    assert (order.id, order.buyer, order.quantity, order.status) == (order_id, ALICE.sub, 3, QUEUED)


def test_someone_else_may_not_read_an_order(world):
    order_id = world.place(world.product(stock=5)).body["order_id"]

    with pytest.raises(Forbidden):
        world.service.get(BOB, order_id)


@pytest.mark.parametrize("order_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-an-id", ""])
def test_an_unknown_or_malformed_order_id_is_not_found(world, order_id):
    with pytest.raises(NotFound):
        world.service.get(ALICE, order_id)


# Applying


def test_an_order_with_enough_stock_is_reserved_at_todays_price_holding_its_units_and_its_saga_starts(world):
    product_id = world.product(stock=5)
    order_id = world.place(product_id, 2).body["order_id"]
    world.clock.advance(timedelta(seconds=1))

    assert world.deliver_all() == [RESERVED]

    assert world.status(order_id) == (RESERVED, None)
    assert world.stock(product_id) == 3
    order = world.orders.get(order_id)
    assert order.updated_at == world.clock() and order.created_at < order.updated_at
    assert (order.amount_cents, order.currency, order.stock_held) == (2400, "EUR", True)
    assert [(entry.status, entry.at) for entry in order.history] == [(QUEUED, order.created_at),
                                                                       (RESERVED, world.clock())]
    start = world.sagas.started[order_id]
    assert (start.input, start.trace_header) == ({"order_id": order_id}, TRACE_HEADER)


def test_a_new_price_between_read_and_write_is_read_again_and_the_order_pays_the_new_one(world):
    product_id = world.product(stock=5)
    order_id = world.place(product_id, 2).body["order_id"]
    world.orders.before_write = [lambda: world.change_product(product_id, price_cents=1500)]

    assert world.deliver_all() == [RESERVED]

    assert world.orders.reserve_attempts == 2  # the first write found another price
    assert world.orders.get(order_id).amount_cents == 3000
    assert world.stock(product_id) == 3


def test_when_the_saga_cannot_be_started_the_record_is_retried_and_the_redelivery_starts_it(world):
    product_id = world.product(stock=5)
    order_id = world.place(product_id).body["order_id"]
    placed, _ = world.queue.sent[0]
    world.sagas.failing = True

    with pytest.raises(DependencyUnavailable):
        world.deliver_all()

    assert world.status(order_id) == (RESERVED, None) and world.sagas.started == {}
    world.sagas.failing = False
    assert world.consumer.apply(placed) == ALREADY_APPLIED
    assert list(world.sagas.started) == [order_id]
    assert world.stock(product_id) == 4  # reserved once


def test_an_order_for_exactly_the_stock_left_is_reserved_down_to_zero(world):
    product_id = world.product(stock=4)
    world.place(product_id, 4)

    assert world.deliver_all() == [RESERVED]
    assert world.stock(product_id) == 0


def test_an_order_for_more_than_the_stock_is_rejected_out_of_stock_and_takes_nothing(world):
    product_id = world.product(stock=2)
    order_id = world.place(product_id, 3).body["order_id"]

    assert world.deliver_all() == [REJECTED]

    assert world.status(order_id) == (REJECTED, OUT_OF_STOCK)
    assert world.stock(product_id) == 2
    order = world.orders.get(order_id)
    assert [(e.status, e.reason) for e in order.history] == [(QUEUED, None), (REJECTED, OUT_OF_STOCK)]
    assert (order.stock_held, order.amount_cents, world.sagas.started) == (False, None, {})


def test_an_order_for_a_product_that_is_gone_is_rejected_product_not_found(world):
    product_id = world.product(stock=2)
    order_id = world.place(product_id).body["order_id"]
    del world.products.items[product_id]

    world.deliver_all()

    assert world.status(order_id) == (REJECTED, PRODUCT_NOT_FOUND)


def test_orders_beyond_the_stock_are_rejected_and_the_stock_never_goes_below_zero(world):
    product_id = world.product(stock=5)
    for _ in range(8):
        world.place(product_id)

    outcomes = world.deliver_all()

    assert outcomes == [RESERVED] * 5 + [REJECTED] * 3
    assert world.stock(product_id) == 0
    assert len(world.sagas.started) == 5


def test_a_redelivered_reserved_order_changes_nothing_and_starting_its_saga_again_is_a_no_op(world):
    product_id = world.product(stock=5)
    order_id = world.place(product_id, 2).body["order_id"]
    placed, _ = world.queue.sent[0]
    world.deliver_all()
    reserved = world.orders.get(order_id)
    world.clock.advance(timedelta(minutes=1))

    assert world.consumer.apply(placed) == ALREADY_APPLIED

    assert world.orders.get(order_id) == reserved
    assert world.stock(product_id) == 3
    assert world.sagas.start_calls == 2 and list(world.sagas.started) == [order_id]


def test_a_redelivered_reserved_order_changes_nothing_even_once_the_stock_is_gone(world):
    product_id = world.product(stock=2)
    order_id = world.place(product_id, 2).body["order_id"]
    placed, _ = world.queue.sent[0]
    world.deliver_all()

    assert world.consumer.apply(placed) == ALREADY_APPLIED

    assert world.status(order_id) == (RESERVED, None)


def test_a_redelivered_rejected_order_stays_rejected_after_a_restock(world):
    product_id = world.product(stock=1)
    order_id = world.place(product_id, 2).body["order_id"]
    placed, _ = world.queue.sent[0]
    world.deliver_all()
    world.set_stock(product_id, 10)

    assert world.consumer.apply(placed) == ALREADY_APPLIED

    assert world.status(order_id) == (REJECTED, OUT_OF_STOCK)
    assert world.stock(product_id) == 10


def test_when_a_rival_takes_the_last_units_between_read_and_write_the_order_is_rejected(world):
    product_id = world.product(stock=3)
    order_id = world.place(product_id, 2).body["order_id"]
    world.orders.before_write = [lambda: world.set_stock(product_id, 1)]

    assert world.deliver_all() == [REJECTED]

    assert world.orders.reads == [3, 1]  # the failed write made it read again
    assert world.orders.reserve_attempts == 1  # and the re-read found too little: no second write
    assert world.status(order_id) == (REJECTED, OUT_OF_STOCK)
    assert world.stock(product_id) == 1


def test_when_the_stock_changed_but_enough_remains_on_the_re_read_the_order_is_reserved(world):
    product_id = world.product(stock=3)
    order_id = world.place(product_id, 2).body["order_id"]
    world.orders.before_write = [lambda: world.set_stock(product_id, 1)]
    world.orders.before_read = [lambda: None, lambda: world.set_stock(product_id, 10)]  # a restock

    assert world.deliver_all() == [RESERVED]

    assert world.orders.reads == [3, 10] and world.orders.reserve_attempts == 2
    assert world.status(order_id) == (RESERVED, None)
    assert world.stock(product_id) == 8


def test_when_the_stock_keeps_moving_the_consumer_gives_up_after_three_writes_and_rejects(world):
    product_id = world.product(stock=10)
    order_id = world.place(product_id, 2).body["order_id"]
    # Every read finds plenty; every write finds a rival has just taken all but one.
    world.orders.before_read = [lambda: world.set_stock(product_id, 10)] * 4
    world.orders.before_write = [lambda: world.set_stock(product_id, 1)] * 4

    assert world.deliver_all() == [REJECTED]

    assert world.orders.reserve_attempts == 3
    assert world.status(order_id) == (REJECTED, OUT_OF_STOCK)
    assert world.stock(product_id) == 1


def test_when_the_product_is_deleted_between_read_and_write_the_order_is_rejected_not_found(world):
    product_id = world.product(stock=3)
    order_id = world.place(product_id).body["order_id"]
    world.orders.before_write = [lambda: world.products.items.pop(product_id)]

    world.deliver_all()

    assert world.status(order_id) == (REJECTED, PRODUCT_NOT_FOUND)


class ThrottledOrders(InMemoryOrderRepository):
    def reserve(self, placed: OrderPlaced, offer: Offer, now: Any) -> WriteOutcome:
        raise DependencyUnavailable("DynamoDB: ProvisionedThroughputExceededException")


def test_a_throttled_write_propagates_so_the_record_is_retried_and_nothing_changes(world):
    product_id = world.product(stock=3)
    order_id = world.place(product_id).body["order_id"]
    throttled = ThrottledOrders(world.products, world.records, world.clock)
    throttled.items = world.orders.items
    placed, _ = world.queue.sent[0]

    with pytest.raises(DependencyUnavailable):
        world.wired(throttled).order_consumer.apply(placed)

    assert world.status(order_id) == (QUEUED, None) and world.stock(product_id) == 3
    assert world.sagas.started == {}
    assert world.deliver_all() == [RESERVED]  # the retry


# A batch reads the offers once


def test_a_batch_reads_each_products_offer_once_and_each_order_sees_what_the_previous_took(world):
    mugs, cups = world.product(stock=3), world.product(stock=1)
    for product_id, quantity in [(mugs, 2), (cups, 1), (mugs, 1), (mugs, 1), (cups, 1)]:
        world.place(product_id, quantity)

    assert world.deliver_batch() == [RESERVED, RESERVED, RESERVED, REJECTED, REJECTED]

    assert (world.orders.batch_reads, world.orders.reads) == (1, [])
    assert (world.stock(mugs), world.stock(cups)) == (0, 0)


def test_a_batch_whose_stock_a_rival_took_meanwhile_reads_again_and_never_oversells(world):
    product_id = world.product(stock=3)
    first, second = (world.place(product_id, 2).body["order_id"] for _ in range(2))
    # Another consumer takes 2 units after this batch read the stock, before its first write.
    world.orders.before_write = [lambda: world.set_stock(product_id, 1)]

    assert world.deliver_batch() == [REJECTED, REJECTED]

    assert world.orders.reads == [1]  # the failed write made it read again
    assert [world.status(o) for o in (first, second)] == [(REJECTED, OUT_OF_STOCK)] * 2
    assert world.stock(product_id) == 1


def test_when_the_batch_read_fails_each_order_reads_its_offer_itself(world):
    product_id = world.product(stock=1)
    world.place(product_id)

    def throttled(product_ids: Any) -> dict[str, Offer | None]:
        raise DependencyUnavailable("throttled")

    world.orders.offers_of = throttled

    assert world.deliver_batch() == [RESERVED]
    assert world.orders.reads == [1]


def test_an_order_for_a_product_that_does_not_exist_is_rejected_from_the_batch_read(world):
    order_id = world.place(world.ids()).body["order_id"]

    assert world.deliver_batch() == [REJECTED]

    assert world.orders.reads == []
    assert world.status(order_id) == (REJECTED, PRODUCT_NOT_FOUND)


# Listing


def test_the_caller_lists_only_their_orders_newest_first_page_by_page(world):
    product_id = world.product(stock=50)
    alices = [world.place(product_id).body["order_id"] for _ in range(5)]
    world.place(product_id, caller=BOB)

    first = world.service.list(ALICE, status=None, limit=2, cursor=None)
    second = world.service.list(ALICE, status=None, limit=2, cursor=first.next_cursor)
    last = world.service.list(ALICE, status=None, limit=2, cursor=second.next_cursor)

    newest_first = alices[::-1]
    assert [o.id for o in first.items] == newest_first[:2]
    assert [o.id for o in second.items] == newest_first[2:4]
    assert [o.id for o in last.items] == newest_first[4:] and last.next_cursor is None


def test_a_status_filter_lists_only_the_orders_in_that_status(world):
    product_id = world.product(stock=2)
    orders = [world.place(product_id).body["order_id"] for _ in range(3)]
    world.deliver_all()  # two reserved, the third rejected out of stock

    reserved = world.service.list(ALICE, status="reserved", limit=10, cursor=None)
    rejected = world.service.list(ALICE, status="rejected", limit=10, cursor=None)

    assert [o.id for o in reserved.items] == [orders[1], orders[0]]
    assert [(o.id, o.reason) for o in rejected.items] == [(orders[2], OUT_OF_STOCK)]


def test_a_cursor_of_one_status_filter_is_refused_for_another_naming_cursor(world):
    product_id = world.product(stock=5)
    for _ in range(3):
        world.place(product_id)
    world.deliver_all()
    page = world.service.list(ALICE, status="reserved", limit=1, cursor=None)
    assert page.next_cursor is not None

    for status in ("queued", None):
        with pytest.raises(InvalidInput) as caught:
            world.service.list(ALICE, status=status, limit=1, cursor=page.next_cursor)
        assert caught.value.field == "cursor"


def test_a_cursor_of_another_buyer_is_refused_naming_cursor(world):
    product_id = world.product(stock=5)
    for _ in range(2):
        world.place(product_id)
    page = world.service.list(ALICE, status=None, limit=1, cursor=None)

    with pytest.raises(InvalidInput) as caught:
        world.service.list(BOB, status=None, limit=1, cursor=page.next_cursor)

    assert caught.value.field == "cursor"


@pytest.mark.parametrize("status", ["shipped", "QUEUED", ""])
def test_an_unknown_status_is_refused_naming_status(world, status):
    with pytest.raises(InvalidInput) as caught:
        world.service.list(ALICE, status=status, limit=10, cursor=None)

    assert caught.value.field == "status"
