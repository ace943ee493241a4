"""Orders in DynamoDB (pynamodb), and the one atomic write that confirms an order."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import (
    CONDITION_FAILED, bind, cancellation_codes, condition_failed, connection_of, is_conflict, translate_transient,
)
from chalicelib.adapters.idempotency_table import IdempotencyItem, save_remembering
from chalicelib.adapters.products_table import ProductItem
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.orders import (
    CONFIRMED, QUEUED, REJECTED, Order, OrderPlaced, OrderStatus, RejectReason, WriteOutcome,
)

__all__ = ["OrderItem", "bind_orders_table", "PynamoOrderRepository"]


class BuyerIndex(GlobalSecondaryIndex["OrderItem"]):
    class Meta:
        index_name = "buyer-index"
        projection = AllProjection()

    buyer = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class OrderItem(Model):
    """Declared once; `bind_orders_table` names the deployment's table."""

    id = UnicodeAttribute(hash_key=True)
    buyer = UnicodeAttribute()
    product_id = UnicodeAttribute()
    quantity = NumberAttribute()
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    buyer_index: BuyerIndex


def bind_orders_table(*, table: str, region: str) -> type[OrderItem]:
    return bind(OrderItem, table=table, region=region, buyer_index=BuyerIndex())


def _to_order(item: OrderItem) -> Order:
    return Order(id=item.id, buyer=item.buyer, product_id=item.product_id, quantity=int(item.quantity),
                 status=OrderStatus(item.status), reason=None if item.reason is None else RejectReason(item.reason),
                 created_at=item.created_at, updated_at=item.updated_at)


class PynamoOrderRepository:
    """Transient DynamoDB errors become DependencyUnavailable: the API answers 503, and the
    consumer's record comes back from the queue."""

    def __init__(self, order_model: type[OrderItem], product_model: type[ProductItem],
                 idempotency_model: type[IdempotencyItem]) -> None:
        self._order = order_model
        self._product = product_model
        self._idempotency = idempotency_model

    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        item = self._order(order.id, buyer=order.buyer, product_id=order.product_id, quantity=order.quantity,
                           status=order.status, created_at=order.created_at, updated_at=order.updated_at)
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
            return _to_order(self._order.get(order_id, consistent_read=True))
        except self._order.DoesNotExist:
            return None

    def stock_of(self, product_id: str) -> int | None:
        try:
            with translate_transient():
                item = self._product.get(product_id, consistent_read=True, attributes_to_get=["stock"])
        except self._product.DoesNotExist:
            return None
        return int(item.stock)

    def stocks_of(self, product_ids: Collection[str]) -> dict[str, int | None]:
        stocks: dict[str, int | None] = dict.fromkeys(product_ids)
        with translate_transient():
            for item in self._product.batch_get(list(product_ids), consistent_read=True,
                                                attributes_to_get=["id", "stock"]):
                stocks[item.id] = int(item.stock)
        return stocks

    def _terminal(self, placed: OrderPlaced, status: OrderStatus, now: datetime,
                  reason: RejectReason | None) -> tuple[OrderItem, list[Action], Condition]:
        cls = self._order
        actions: list[Action] = [cls.status.set(status), cls.updated_at.set(now)]
        if reason is not None:
            actions.append(cls.reason.set(reason))
        # Only a queued order gets an outcome, and only once. The API records the order before it
        # sends the message, so an absent order is one it withdrew after telling the buyer the
        # order failed (remove_queued): applying it would sell what the buyer was told is not sold.
        condition = cls.status == QUEUED
        return cls(placed.order_id), actions, condition

    def confirm(self, placed: OrderPlaced, now: datetime) -> WriteOutcome:
        product = self._product
        order, order_actions, order_condition = self._terminal(placed, CONFIRMED, now, None)
        try:
            with translate_transient(), TransactWrite(connection=connection_of(product)) as transaction:
                # Any version will do: with add_version_condition=False pynamodb only appends
                # "version + 1" (a stock change is a change), and the stock condition is the guard.
                current = product(placed.product_id, version=0)
                transaction.update(
                    current, actions=[product.stock.add(-placed.quantity), product.updated_at.set(now)],
                    condition=product.id.exists() & (product.stock >= placed.quantity),
                    add_version_condition=False)
                transaction.update(order, actions=order_actions, condition=order_condition)
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

    def reject(self, placed: OrderPlaced, reason: RejectReason, now: datetime) -> WriteOutcome:
        order, actions, condition = self._terminal(placed, REJECTED, now, reason)
        try:
            with translate_transient():
                order.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if condition_failed(exc):
                return WriteOutcome.ALREADY_APPLIED
            raise
        return WriteOutcome.APPLIED
