"""Order use cases: place (API, fast: record + enqueue), read, and apply (the queue consumer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Collection, Iterable, Protocol

from chalicelib.domain import idempotency
from chalicelib.domain.errors import DependencyUnavailable, Forbidden, KeyAlreadyUsed, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.ids import is_id
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.orders import (
    CONFIRMED, OUT_OF_STOCK, QUEUED, REJECTED, Order, OrderPlaced, OrderStatus, RejectReason, WriteOutcome, decide,
)
from chalicelib.services.shared import Clock, IdempotencyStore, IdFactory, TraceHeader

if TYPE_CHECKING:
    from datetime import datetime

    from chalicelib.domain.commands import PlaceOrder

__all__ = ["OrderRepository", "OrderQueue", "OrderService", "OrderConsumer", "Placed"]

_PLACE = "place_order"
_CONFIRM_ATTEMPTS = 3


class OrderRepository(Protocol):
    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        """Record a queued order (and `remember` atomically); raises KeyAlreadyUsed."""

    def remove_queued(self, order_id: str) -> bool:
        """Forget an order that never reached the queue, only while it is still queued.

        False when it has left `queued`: the message did reach the consumer after all."""

    def get(self, order_id: str) -> Order | None: ...

    def stock_of(self, product_id: str) -> int | None:
        """The product's stock, None if there is no such product (a consistent read)."""

    def stocks_of(self, product_ids: Collection[str]) -> dict[str, int | None]:
        """The stock of each product, None for those that do not exist, in one consistent read."""

    def confirm(self, placed: OrderPlaced, now: "datetime") -> WriteOutcome:
        """ONE atomic write: stock -= quantity if enough remains, and the order queued -> confirmed.

        Returns APPLIED, ALREADY_APPLIED (the order is no longer queued: a redelivery, or an
        order the API withdrew) or STOCK_CHANGED (not enough stock, or no product, at write time)."""

    def reject(self, placed: OrderPlaced, reason: RejectReason, now: "datetime") -> WriteOutcome:
        """The order queued -> rejected with `reason`; APPLIED or ALREADY_APPLIED."""


class OrderQueue(Protocol):
    def send(self, placed: OrderPlaced, trace_header: str | None) -> None:
        """Raises DependencyUnavailable when the message could not be sent."""


@dataclass(frozen=True)
class Placed:
    status: int
    body: dict[str, Any]
    replayed: bool


class OrderService:
    def __init__(self, orders: OrderRepository, queue: OrderQueue, idempotency_store: IdempotencyStore, *,
                 clock: Clock, new_id: IdFactory, idempotency_ttl: timedelta, trace_header: TraceHeader) -> None:
        """`trace_header()` gives the header that lets the consumer join this request's trace."""
        self._orders = orders
        self._queue = queue
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
                      quantity=command.quantity, status=QUEUED, created_at=now, updated_at=now)
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


class OrderConsumer:
    """Confirms or rejects each placed order exactly once; stock never goes below zero."""

    def __init__(self, orders: OrderRepository, *, clock: Clock) -> None:
        self._orders = orders
        self._clock = clock

    def read_stocks(self, placed: Iterable[OrderPlaced]) -> dict[str, int | None]:
        """The stock of every product a batch of orders names, read once for the whole batch.

        Hand it to `apply` for each order of the batch: it is what a read per order would say, a
        moment earlier; each order's own conditional write still guards the stock. Empty when the
        read fails: each order then reads for itself, and its retry decides."""
        product_ids = {p.product_id for p in placed}
        if not product_ids:
            return {}
        try:
            return self._orders.stocks_of(product_ids)
        except DependencyUnavailable:
            return {}

    def apply(self, placed: OrderPlaced, stocks: dict[str, int | None] | None = None) -> OrderStatus | WriteOutcome:
        """The order's final status (CONFIRMED / REJECTED), or ALREADY_APPLIED for a redelivery.

        `stocks` (from read_stocks) saves the read of the stock; this order's outcome is written
        back into it for the next order of the batch. Transient storage errors propagate (the
        record is retried)."""
        # Reading first keeps a rejection to one write; the write's own condition is what keeps
        # stock >= 0 when concurrent consumers race for the last units (then we read again).
        known = stocks if stocks is not None else {}
        now = self._clock()
        reason: RejectReason = OUT_OF_STOCK  # if stock keeps moving under us: the conservative answer
        for _ in range(_CONFIRM_ATTEMPTS):
            if placed.product_id in known:
                stock = known.pop(placed.product_id)
            else:
                stock = self._orders.stock_of(placed.product_id)
            rejected = decide(stock, placed.quantity)
            if rejected is not None or stock is None:  # (decide rejects a missing product)
                known[placed.product_id] = stock
                reason = rejected or RejectReason.PRODUCT_NOT_FOUND
                break
            outcome = self._orders.confirm(placed, now)
            if outcome == WriteOutcome.APPLIED:
                known[placed.product_id] = stock - placed.quantity
                return CONFIRMED
            if outcome == WriteOutcome.ALREADY_APPLIED:
                return WriteOutcome.ALREADY_APPLIED
        outcome = self._orders.reject(placed, reason, now)
        return REJECTED if outcome == WriteOutcome.APPLIED else WriteOutcome.ALREADY_APPLIED
