"""Orders in DynamoDB (pynamodb): every move of an order is one conditional write.

The conditions carry the saga's invariants, so no retry, redelivery or race can break them:
stock is taken once (`queued -> reserved` with the decrement, in one transaction) and put back
once (`stock_held` true -> false with the increment); the payment moves only from the state the
step expects; and an order ends only from a status that may end, with its stock put back and no
money held.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from pynamodb.attributes import (
    BooleanAttribute, ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute,
)
from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import (
    CONDITION_FAILED, answers_throttling, bind, cancellation_codes, condition_failed, connection_of, is_conflict,
    stamp_trace, translate_transient,
)
from chalicelib.adapters.idempotency_table import IdempotencyItem, save_remembering
from chalicelib.adapters.products_table import ProductItem
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.orders import (
    QUEUED, RESERVED, HistoryEntry, Offer, Order, OrderPlaced, OrderStatus, WriteOutcome,
)
from chalicelib.domain.paging import Page
from chalicelib.domain.payments import Payment, PaymentStatus
from chalicelib.domain.products import iso

__all__ = ["OrderItem", "bind_orders_table", "order_of", "PynamoOrderRepository"]

_MONEY_HELD = (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED)


class BuyerIndex(GlobalSecondaryIndex["OrderItem"]):
    """A buyer's orders, newest first (ids are ULIDs: they sort by creation time)."""

    class Meta:
        index_name = "buyer-index"
        projection = AllProjection()

    buyer = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class BuyerStatusIndex(GlobalSecondaryIndex["OrderItem"]):
    """A buyer's orders in one status, newest first: `GET /orders?status=` is one query."""

    class Meta:
        index_name = "buyer-status-index"
        projection = AllProjection()

    buyer_status = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class OrderItem(Model):
    """Declared once; `bind_orders_table` names the deployment's table."""

    id = UnicodeAttribute(hash_key=True)
    buyer = UnicodeAttribute()
    product_id = UnicodeAttribute()
    quantity = NumberAttribute()
    status = UnicodeAttribute()
    buyer_status = UnicodeAttribute(null=True)  # "<buyer>#<status>": the key of buyer-status-index
    reason = UnicodeAttribute(null=True)
    payment_method = UnicodeAttribute(null=True)
    amount_cents = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    payment_status = UnicodeAttribute(null=True)
    payment_reference = UnicodeAttribute(null=True)
    payment_failure = UnicodeAttribute(null=True)
    stock_held = BooleanAttribute(null=True)
    notified = BooleanAttribute(null=True)
    seller = UnicodeAttribute(null=True)  # the product's owner and name when the stock was reserved
    product_name = UnicodeAttribute(null=True)
    trace_header = UnicodeAttribute(null=True)  # the last move's X-Ray header (see ProductItem)
    # [{"status", "at" (ISO 8601 UTC), "reason"?}], appended to by every move.
    history: ListAttribute[dict[str, str]] = ListAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    buyer_index: BuyerIndex
    buyer_status_index: BuyerStatusIndex


def bind_orders_table(*, table: str, region: str) -> type[OrderItem]:
    return bind(OrderItem, table=table, region=region, buyer_index=BuyerIndex(),
                buyer_status_index=BuyerStatusIndex())


def _buyer_status(buyer: str, status: OrderStatus) -> str:
    return f"{buyer}#{status}"


def _entry(status: OrderStatus, at: datetime, reason: str | None = None) -> dict[str, str]:
    entry = {"status": str(status), "at": iso(at)}
    if reason is not None:
        entry["reason"] = str(reason)
    return entry


def order_of(item: OrderItem) -> Order:
    history = tuple(HistoryEntry(OrderStatus(h["status"]), datetime.fromisoformat(h["at"]), h.get("reason"))
                    for h in item.history or ())
    return Order(id=item.id, buyer=item.buyer, product_id=item.product_id, quantity=int(item.quantity),
                 status=OrderStatus(item.status), reason=item.reason, created_at=item.created_at,
                 updated_at=item.updated_at, payment_method=item.payment_method,
                 amount_cents=None if item.amount_cents is None else int(item.amount_cents), currency=item.currency,
                 payment=Payment(PaymentStatus(item.payment_status or PaymentStatus.NONE), item.payment_reference,
                                 item.payment_failure),
                 stock_held=bool(item.stock_held), notified=bool(item.notified), history=history,
                 seller=item.seller, product_name=item.product_name)


class PynamoOrderRepository:
    """Transient DynamoDB errors become DependencyUnavailable: the API answers 503, a consumer's
    record comes back from the queue, a saga step is retried by the state machine."""

    def __init__(self, order_model: type[OrderItem], product_model: type[ProductItem],
                 idempotency_model: type[IdempotencyItem], *,
                 trace_header: Callable[[], str | None] = lambda: None) -> None:
        self._order = order_model
        self._product = product_model
        self._idempotency = idempotency_model
        self._trace_header = trace_header

    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        item = self._order(order.id, buyer=order.buyer, product_id=order.product_id, quantity=order.quantity,
                           status=order.status, buyer_status=_buyer_status(order.buyer, order.status),
                           payment_method=order.payment_method, payment_status=order.payment.status,
                           stock_held=False, notified=False,
                           history=[_entry(order.status, order.created_at)],
                           created_at=order.created_at, updated_at=order.updated_at)
        with translate_transient():
            if remember is None:
                item.save(condition=self._order.id.does_not_exist())
            else:
                save_remembering(item, remember, self._idempotency, condition=self._order.id.does_not_exist())

    def remove_queued(self, order_id: str) -> bool:
        try:
            self._order(order_id).delete(condition=self._order.status == QUEUED)
        except DeleteError as exc:
            if not condition_failed(exc):
                raise
            return False
        return True

    def get(self, order_id: str) -> Order | None:
        try:
            with translate_transient():
                return order_of(self._order.get(order_id, consistent_read=True))
        except self._order.DoesNotExist:
            return None

    @answers_throttling
    def list_for(self, buyer: str, *, status: OrderStatus | None, limit: int, after: str | None) -> Page[Order]:
        cls = self._order
        index: BuyerIndex | BuyerStatusIndex
        if status is None:
            index, hash_key, start = cls.buyer_index, buyer, {"buyer": {"S": buyer}}
        else:
            hash_key = _buyer_status(buyer, status)
            index, start = cls.buyer_status_index, {"buyer_status": {"S": hash_key}}
        last_key = {**start, "id": {"S": after}} if after else None
        # One more than asked tells whether a next page exists without an empty last page.
        results = index.query(hash_key, scan_index_forward=False, limit=limit + 1, page_size=limit + 1,
                              last_evaluated_key=last_key)
        items = [order_of(item) for item in results]
        if len(items) > limit:
            return Page(items[:limit], last_id=items[limit - 1].id)
        return Page(items, last_id=None)

    def offer_of(self, product_id: str) -> Offer | None:
        return self.offers_of([product_id])[product_id]

    def offers_of(self, product_ids: Collection[str]) -> dict[str, Offer | None]:
        offers: dict[str, Offer | None] = dict.fromkeys(product_ids)
        with translate_transient():
            for item in self._product.batch_get(list(product_ids), consistent_read=True,
                                                attributes_to_get=["id", "stock", "price_cents", "currency",
                                                                   "owner", "name"]):
                offers[item.id] = Offer(int(item.stock), int(item.price_cents), item.currency, item.owner, item.name)
        return offers

    def _move(self, to: OrderStatus, buyer: str, now: datetime, reason: str | None = None) -> list[Action]:
        cls = self._order
        actions: list[Action] = [cls.status.set(to), cls.buyer_status.set(_buyer_status(buyer, to)),
                                 cls.updated_at.set(now),
                                 cls.history.set((cls.history | []).append([_entry(to, now, reason)])),
                                 *stamp_trace(cls.trace_header, self._trace_header())]
        if reason is not None:
            actions.append(cls.reason.set(reason))
        return actions

    def reserve(self, placed: OrderPlaced, offer: Offer, now: datetime) -> WriteOutcome:
        product, cls = self._product, self._order
        order_actions = self._move(RESERVED, placed.buyer, now) + [
            cls.amount_cents.set(offer.amount_for(placed.quantity)), cls.currency.set(offer.currency),
            cls.stock_held.set(True), cls.seller.set(offer.seller), cls.product_name.set(offer.name)]
        try:
            with translate_transient(), TransactWrite(connection=connection_of(product)) as transaction:
                # Any version will do: with add_version_condition=False pynamodb only appends
                # "version + 1" (a stock change is a change); stock, price and currency are the guard.
                transaction.update(
                    product(placed.product_id, version=0),
                    actions=[product.stock.add(-placed.quantity), product.updated_at.set(now),
                             *stamp_trace(product.trace_header, self._trace_header())],
                    condition=(product.id.exists() & (product.stock >= placed.quantity)
                               & (product.price_cents == offer.price_cents) & (product.currency == offer.currency)),
                    add_version_condition=False)
                # Only a queued order is reserved, and only once. An absent order is one the API
                # withdrew after telling the buyer it failed (remove_queued): it must not be sold.
                transaction.update(cls(placed.order_id), actions=order_actions, condition=cls.status == QUEUED)
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            if len(codes) == 2 and codes[1] == CONDITION_FAILED:
                return WriteOutcome.ALREADY_APPLIED
            if len(codes) == 2 and codes[0] == CONDITION_FAILED:
                return WriteOutcome.STOCK_CHANGED
            if is_conflict(exc):  # another consumer is writing the same product: retry the record
                raise DependencyUnavailable("DynamoDB transaction conflict") from exc
            raise
        return WriteOutcome.APPLIED

    def _update(self, order_id: str, actions: list[Action], condition: Condition) -> WriteOutcome:
        try:
            with translate_transient():
                self._order(order_id).update(actions=actions, condition=condition)
        except UpdateError as exc:
            if condition_failed(exc):
                return WriteOutcome.ALREADY_APPLIED
            raise
        return WriteOutcome.APPLIED

    def move(self, order_id: str, buyer: str, *, source: OrderStatus, to: OrderStatus,
             now: datetime) -> WriteOutcome:
        """`source -> to`, if the order is still in `source`."""
        cls = self._order
        return self._update(order_id, self._move(to, buyer, now), cls.status == source)

    def end(self, order_id: str, buyer: str, *, expected: Collection[OrderStatus], status: OrderStatus,
            reason: str, now: datetime) -> WriteOutcome:
        """The order ends `status` with `reason`, if it is in one of `expected`, holds no stock and no money."""
        cls = self._order
        condition = (cls.status.is_in(*expected) & ~(cls.stock_held == True)  # noqa: E712 (an expression)
                     & ~cls.payment_status.is_in(*_MONEY_HELD))
        return self._update(order_id, self._move(status, buyer, now, reason), condition)

    def record_payment(self, order_id: str, expected: PaymentStatus, payment: Payment, now: datetime) -> WriteOutcome:
        cls = self._order
        actions: list[Action] = [cls.payment_status.set(payment.status), cls.updated_at.set(now)]
        if payment.reference is not None:
            actions.append(cls.payment_reference.set(payment.reference))
        if payment.failure is not None:
            actions.append(cls.payment_failure.set(payment.failure))
        condition = cls.payment_status == expected
        if expected == PaymentStatus.NONE:
            condition = condition | cls.payment_status.does_not_exist()
        return self._update(order_id, actions, cls.id.exists() & condition)

    def mark_notified(self, order_id: str, now: datetime) -> WriteOutcome:
        cls = self._order
        return self._update(order_id, [cls.notified.set(True), cls.updated_at.set(now)],
                            cls.id.exists() & ~(cls.notified == True))  # noqa: E712

    def restock(self, order: Order, now: datetime) -> WriteOutcome:
        """Put the order's units back, once: the increment and `stock_held -> false` in one write
        (the product may be gone: then only the order is updated; its units went with it)."""
        product, cls = self._product, self._order
        release: list[Action] = [cls.stock_held.set(False), cls.updated_at.set(now)]
        held = cls.stock_held == True  # noqa: E712 (a condition expression, not a comparison)
        try:
            with translate_transient(), TransactWrite(connection=connection_of(product)) as transaction:
                transaction.update(product(order.product_id, version=0),
                                   actions=[product.stock.add(order.quantity), product.updated_at.set(now),
                                            *stamp_trace(product.trace_header, self._trace_header())],
                                   condition=product.id.exists(), add_version_condition=False)
                transaction.update(cls(order.id), actions=release, condition=held)
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            if len(codes) == 2 and codes[1] == CONDITION_FAILED:
                return WriteOutcome.ALREADY_APPLIED
            if len(codes) == 2 and codes[0] == CONDITION_FAILED:  # the product was deleted
                return self._update(order.id, release, held)
            if is_conflict(exc):
                raise DependencyUnavailable("DynamoDB transaction conflict") from exc
            raise
        return WriteOutcome.APPLIED
