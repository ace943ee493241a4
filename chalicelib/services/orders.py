"""Order use cases: place (API, fast: record + enqueue), read, list, cancel, and the queue
consumer's reservation that hands each reserved order to its saga."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Collection, Iterable, Protocol

from chalicelib.domain import idempotency
from chalicelib.domain.errors import DependencyUnavailable, Forbidden, InvalidInput, KeyAlreadyUsed, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.ids import is_id
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.orders import (
    CANCELLABLE, CANCELLED, CANCELLING, CONFIRMED, FAILED, OUT_OF_STOCK, QUEUED, REJECTED, RESERVED, CannotCancel,
    Offer, Order, OrderPlaced, OrderStatus, Reason, WriteOutcome, decide,
)
from chalicelib.domain.paging import Page, decode_cursor, encode_cursor
from chalicelib.domain.payments import Payment, PaymentStatus
from chalicelib.services.shared import Clock, IdempotencyStore, IdFactory, TraceHeader

if TYPE_CHECKING:
    from datetime import datetime

    from chalicelib.domain.commands import PlaceOrder

__all__ = ["OrderRepository", "OrderQueue", "OrderSagas", "OrderService", "OrderConsumer", "Placed", "OrderList"]

_PLACE = "place_order"
_RESERVE_ATTEMPTS = 3
_CANCEL_ATTEMPTS = 3


class OrderRepository(Protocol):
    """Every change is one conditional write; see adapters/orders_table.py for the conditions."""

    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        """Record a queued order (and `remember` atomically); raises KeyAlreadyUsed."""

    def remove_queued(self, order_id: str) -> bool:
        """Forget an order that never reached the queue, only while it is still queued.

        False when it has left `queued`: the message did reach the consumer after all."""

    def get(self, order_id: str) -> Order | None: ...

    def list_for(self, buyer: str, *, status: OrderStatus | None, limit: int, after: str | None) -> Page[Order]:
        """The buyer's orders (in `status`, if given), newest first, after the order `after`."""

    def offer_of(self, product_id: str) -> Offer | None:
        """The product's stock and price, None if there is no such product (a consistent read)."""

    def offers_of(self, product_ids: Collection[str]) -> dict[str, Offer | None]:
        """The offer of each product, None for those that do not exist, in one consistent read."""

    def reserve(self, placed: OrderPlaced, offer: Offer, now: "datetime") -> WriteOutcome:
        """ONE atomic write: stock -= quantity if enough remains at the offer's price, and the
        order queued -> reserved with its amount, holding the stock.

        APPLIED, ALREADY_APPLIED (the order is no longer queued: a redelivery, a cancel, or an
        order the API withdrew) or STOCK_CHANGED (not enough stock, no product, or a new price)."""

    def move(self, order_id: str, buyer: str, *, source: OrderStatus, to: OrderStatus,
             now: "datetime") -> WriteOutcome:
        """`source -> to` if the order is still in `source`; APPLIED or ALREADY_APPLIED."""

    def end(self, order_id: str, buyer: str, *, expected: Collection[OrderStatus], status: OrderStatus,
            reason: str, now: "datetime") -> WriteOutcome:
        """The order ends: only from `expected`, with no stock held and no money held (else
        ALREADY_APPLIED)."""

    def record_payment(self, order_id: str, expected: PaymentStatus, payment: Payment,
                       now: "datetime") -> WriteOutcome:
        """The payment becomes `payment` if it is still `expected`."""

    def restock(self, order: Order, now: "datetime") -> WriteOutcome:
        """Put the order's units back, once (stock += quantity and the order stops holding them)."""

    def mark_notified(self, order_id: str, now: "datetime") -> WriteOutcome:
        """Record that the buyer was e-mailed; ALREADY_APPLIED if that was recorded before."""


class OrderSagas(Protocol):
    """Starts an order's saga (a Step Functions execution, adapters/step_functions.py)."""

    def start(self, order_id: str, trace_header: str | None) -> None:
        """Start the order's saga; a second start of the same order does nothing. Raises
        DependencyUnavailable when it could not be started."""

    def start_cancellation(self, order_id: str, trace_header: str | None) -> None:
        """Start the compensation of an order whose saga has finished (a confirmed order); once."""


class OrderQueue(Protocol):
    def send(self, placed: OrderPlaced, trace_header: str | None) -> None:
        """Raises DependencyUnavailable when the message could not be sent."""


@dataclass(frozen=True)
class Placed:
    status: int
    body: dict[str, Any]
    replayed: bool


@dataclass(frozen=True)
class OrderList:
    items: list[Order]
    next_cursor: str | None


class OrderService:
    def __init__(self, orders: OrderRepository, queue: OrderQueue, sagas: OrderSagas,
                 idempotency_store: IdempotencyStore, *, clock: Clock, new_id: IdFactory,
                 idempotency_ttl: timedelta, trace_header: TraceHeader) -> None:
        """`trace_header()` gives the header that lets the consumer join this request's trace."""
        self._orders = orders
        self._queue = queue
        self._sagas = sagas
        self._idempotency = idempotency_store
        self._clock = clock
        self._new_id = new_id
        self._ttl = idempotency_ttl
        self._trace_header = trace_header

    def place(self, caller: Caller, command: "PlaceOrder", *, raw_body: Any,
              idempotency_key: str | None) -> Placed:
        """Record the order `queued` and enqueue it: nothing slow happens here.

        Raises IdempotencyConflict (key reused with another body) or DependencyUnavailable
        (the queue refused: nothing was accepted; retry, with the same key if one was given).
        """
        now = self._clock()
        order = Order(id=self._new_id(), buyer=caller.sub, product_id=command.product_id,
                      quantity=command.quantity, status=QUEUED, created_at=now, updated_at=now,
                      payment_method=command.payment_method)
        body = {"order_id": order.id, "status": QUEUED}
        remember = None
        if idempotency_key is not None:
            remember = IdempotencyRecord(
                key=idempotency.record_key(caller.sub, _PLACE, idempotency_key),
                fingerprint=idempotency.fingerprint(raw_body),
                response=idempotency.StoredResponse(202, body), expires_at=now + self._ttl)
        try:
            self._orders.add(order, remember=remember)
        except KeyAlreadyUsed:
            assert remember is not None  # only a remembered key can be taken already
            return self._replay(remember, caller)
        placed = OrderPlaced(order.id, caller.sub, order.product_id, order.quantity)
        try:
            self._queue.send(placed, self._trace_header())
        except DependencyUnavailable:
            # With a key the order stays: a retry with the key re-sends it (see _replay). Without
            # one it is forgotten, unless it has already left `queued`: SQS took the message but
            # its answer was lost, and the consumer applied it. Then it was accepted, and a 503
            # would make the buyer order twice.
            if remember is not None or self._orders.remove_queued(order.id):
                raise
        return Placed(202, body, replayed=False)

    def _replay(self, remember: IdempotencyRecord, caller: Caller) -> Placed:
        first = self._idempotency.get(remember.key, self._clock())
        if first is None:
            raise DependencyUnavailable("the idempotency record expired while being read; retry")
        stored = idempotency.replay(first, remember.fingerprint)
        order = self._orders.get(stored.body["order_id"])
        if order is not None and order.status == QUEUED:
            # The first attempt may have stopped between recording and sending; sending again is
            # harmless (the consumer applies an order once) and guarantees it is processed.
            self._queue.send(OrderPlaced(order.id, caller.sub, order.product_id, order.quantity),
                             self._trace_header())
        return Placed(stored.status, stored.body, replayed=True)

    def get(self, caller: Caller, order_id: str) -> Order:
        """Raises NotFound, or Forbidden when the caller is not the buyer."""
        order = self._orders.get(order_id) if is_id(order_id) else None
        if order is None:
            raise NotFound(f"order {order_id} does not exist")
        if order.buyer != caller.sub:
            raise Forbidden("only the buyer may read an order")
        return order

    def list(self, caller: Caller, *, status: str | None, limit: int, cursor: str | None) -> OrderList:
        """The caller's orders, newest first; raises InvalidInput naming `status` or `cursor`."""
        wanted = None
        if status is not None:
            try:
                wanted = OrderStatus(status)
            except ValueError:
                raise InvalidInput("status", f"must be one of {', '.join(OrderStatus)}") from None
        scope = f"orders:{caller.sub}:{wanted or ''}"
        after = decode_cursor(cursor, scope) if cursor is not None else None
        page: Page[Order] = self._orders.list_for(caller.sub, status=wanted, limit=limit, after=after)
        return OrderList(list(page.items), encode_cursor(scope, page.last_id) if page.last_id else None)

    def cancel(self, caller: Caller, order_id: str) -> Order:
        """Move the order to `cancelling`; its compensation ends it `cancelled`, exactly once.

        Who compensates depends on where the order is: a queued order is ended by the consumer
        when its message arrives; a reserved or paid one by its running saga, which checks the
        status at every step; a confirmed one (its saga has finished) by a cancellation
        execution started here. Raises NotFound, Forbidden, or CannotCancel (409) for an ended order.
        """
        for _ in range(_CANCEL_ATTEMPTS):
            order = self.get(caller, order_id)
            if order.status == CANCELLING:
                if CONFIRMED in (entry.status for entry in order.history):
                    # Its cancellation may not have started (the first ask got a 503): start it
                    # again, a no-op if it did (executions are named by the order).
                    self._sagas.start_cancellation(order.id, self._trace_header())
                return order  # asked again: nothing more to do
            if order.status not in CANCELLABLE:
                raise CannotCancel(f"order {order_id} is {order.status}: it can no longer be cancelled")
            now = self._clock()
            moved = self._orders.move(order.id, order.buyer, source=order.status, to=CANCELLING, now=now)
            if moved == WriteOutcome.APPLIED:
                if order.status == CONFIRMED:
                    self._sagas.start_cancellation(order.id, self._trace_header())
                return dataclasses.replace(order, status=CANCELLING, updated_at=now)
        raise DependencyUnavailable(f"order {order_id} kept changing while being cancelled; retry")


class OrderConsumer:
    """Reserves stock for each placed order (or rejects it) exactly once, and starts its saga;
    stock never goes below zero."""

    def __init__(self, orders: OrderRepository, sagas: OrderSagas, *, clock: Clock,
                 trace_header: TraceHeader) -> None:
        """`trace_header()` gives the header that lets the saga join the consumer's trace."""
        self._orders = orders
        self._sagas = sagas
        self._clock = clock
        self._trace_header = trace_header

    def read_offers(self, placed: Iterable[OrderPlaced]) -> dict[str, Offer | None]:
        """The offer of every product a batch of orders names, read once for the whole batch.

        Hand it to `apply` for each order of the batch: it is what a read per order would say, a
        moment earlier; each order's own conditional write still guards stock and price. Empty
        when the read fails: each order then reads for itself, and its retry decides."""
        product_ids = {p.product_id for p in placed}
        if not product_ids:
            return {}
        try:
            return self._orders.offers_of(product_ids)
        except DependencyUnavailable:
            return {}

    def apply(self, placed: OrderPlaced, offers: dict[str, Offer | None] | None = None) -> OrderStatus | WriteOutcome:
        """RESERVED (and its saga started), REJECTED, CANCELLED (cancelled while queued), or
        ALREADY_APPLIED for a redelivery (which starts the saga again if the first delivery
        stopped before it: a second start is a no-op).

        `offers` (from read_offers) saves the read; this order's outcome is written back into it
        for the next order of the batch. Transient errors propagate (the record is retried)."""
        # Reading first keeps a rejection to one write; the write's own condition is what keeps
        # stock >= 0 when concurrent consumers race for the last units (then we read again).
        known = offers if offers is not None else {}
        now = self._clock()
        reason: Reason = OUT_OF_STOCK  # if stock keeps moving under us: the conservative answer
        for _ in range(_RESERVE_ATTEMPTS):
            offer = known.pop(placed.product_id) if placed.product_id in known else self._orders.offer_of(
                placed.product_id)
            rejected = decide(offer, placed.quantity)
            if rejected is not None or offer is None:  # (decide rejects a missing product)
                known[placed.product_id] = offer
                reason = rejected or Reason.PRODUCT_NOT_FOUND
                break
            outcome = self._orders.reserve(placed, offer, now)
            if outcome == WriteOutcome.APPLIED:
                known[placed.product_id] = dataclasses.replace(offer, stock=offer.stock - placed.quantity)
                self._sagas.start(placed.order_id, self._trace_header())
                return RESERVED
            if outcome == WriteOutcome.ALREADY_APPLIED:
                return self._follow_up(placed)
        outcome = self._orders.end(placed.order_id, placed.buyer, expected={QUEUED}, status=REJECTED,
                                   reason=reason, now=now)
        return REJECTED if outcome == WriteOutcome.APPLIED else self._follow_up(placed)

    def give_up(self, placed: OrderPlaced) -> OrderStatus | WriteOutcome:
        """The order's message exhausted its deliveries (the orders DLQ): an order still queued
        ends `failed` (`not_processed`); anything further along is finished as `apply` would."""
        outcome = self._orders.end(placed.order_id, placed.buyer, expected={QUEUED}, status=FAILED,
                                   reason=Reason.NOT_PROCESSED, now=self._clock())
        return FAILED if outcome == WriteOutcome.APPLIED else self._follow_up(placed)

    def _follow_up(self, placed: OrderPlaced) -> OrderStatus | WriteOutcome:
        """The order had already left `queued`: make sure what must follow does."""
        order = self._orders.get(placed.order_id)
        if order is None or order.ended:
            return WriteOutcome.ALREADY_APPLIED  # withdrawn by the API, or finished
        if order.stock_held:
            # Reserved by an earlier delivery that may have stopped before starting the saga.
            self._sagas.start(order.id, self._trace_header())
        elif order.status == CANCELLING:
            # Cancelled while queued: nothing was taken, nothing to give back.
            ended = self._orders.end(order.id, order.buyer, expected={CANCELLING}, status=CANCELLED,
                                     reason=Reason.CANCELLED_BY_BUYER, now=self._clock())
            if ended == WriteOutcome.APPLIED:
                return CANCELLED
        return WriteOutcome.ALREADY_APPLIED
