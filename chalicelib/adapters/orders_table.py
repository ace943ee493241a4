"""Orders in DynamoDB (pynamodb), and the one atomic write that confirms an order."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Collection

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import Models, is_transient, save_remembering
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.orders import CONFIRMED, QUEUED, REJECTED, Order, OrderPlaced
from chalicelib.services.orders import ALREADY_APPLIED, APPLIED, STOCK_CHANGED

__all__ = ["make_order_model", "PynamoOrderRepository", "StorageThrottled"]

_CONDITION_FAILED = "ConditionalCheckFailed"


class StorageThrottled(DependencyUnavailable):
    """DynamoDB throttled or failed transiently: the caller retries (a queue record comes back)."""


def make_order_model(*, orders_table: str, region: str) -> type[Model]:
    region_name = region  # class bodies cannot read a function local of the same name

    class BuyerIndex(GlobalSecondaryIndex):
        class Meta:
            index_name = "buyer-index"
            projection = AllProjection()

        buyer = UnicodeAttribute(hash_key=True)
        id = UnicodeAttribute(range_key=True)

    class OrderItem(Model):
        class Meta:
            table_name = orders_table
            region = region_name

        id = UnicodeAttribute(hash_key=True)
        buyer = UnicodeAttribute()
        product_id = UnicodeAttribute()
        quantity = NumberAttribute()
        status = UnicodeAttribute()
        reason = UnicodeAttribute(null=True)
        created_at = UTCDateTimeAttribute()
        updated_at = UTCDateTimeAttribute()
        buyer_index = BuyerIndex()

    return OrderItem


def _to_order(item: Model) -> Order:
    return Order(id=item.id, buyer=item.buyer, product_id=item.product_id, quantity=int(item.quantity),
                 status=item.status, reason=item.reason, created_at=item.created_at, updated_at=item.updated_at)


def _raise_transient(exc: Exception) -> None:
    if is_transient(exc):
        raise StorageThrottled(f"DynamoDB: {getattr(exc, 'cause_response_code', exc)}") from exc


class PynamoOrderRepository:
    def __init__(self, order_model: type[Model], models: Models) -> None:
        self._order = order_model
        self._product = models.product
        self._idempotency = models.idempotency

    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        item = self._order(order.id, buyer=order.buyer, product_id=order.product_id, quantity=order.quantity,
                           status=order.status, created_at=order.created_at, updated_at=order.updated_at)
        try:
            if remember is None:
                item.save(condition=self._order.id.does_not_exist())
            else:
                save_remembering(item, remember, self._idempotency, condition=self._order.id.does_not_exist())
        except (PutError, TransactWriteError) as exc:
            _raise_transient(exc)
            raise

    def remove_queued(self, order_id: str) -> bool:
        try:
            self._order(order_id).delete(condition=self._order.status == QUEUED)
        except DeleteError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
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
            item = self._product.get(product_id, consistent_read=True, attributes_to_get=["stock"])
        except self._product.DoesNotExist:
            return None
        except Exception as exc:
            _raise_transient(exc)
            raise
        return int(item.stock)

    def stocks_of(self, product_ids: Collection[str]) -> dict[str, int | None]:
        stocks: dict[str, int | None] = dict.fromkeys(product_ids)
        try:
            for item in self._product.batch_get(list(product_ids), consistent_read=True,
                                                attributes_to_get=["id", "stock"]):
                stocks[item.id] = int(item.stock)
        except Exception as exc:
            _raise_transient(exc)
            raise
        return stocks

    def _terminal(self, placed: OrderPlaced, status: str, now: datetime, reason: str | None) -> tuple[Any, list, Any]:
        cls = self._order
        actions = [cls.status.set(status), cls.updated_at.set(now)]
        if reason is not None:
            actions.append(cls.reason.set(reason))
        # Only a queued order gets an outcome, and only once. The API records the order before it
        # sends the message, so an absent order is one it withdrew after telling the buyer the
        # order failed (remove_queued): applying it would sell what the buyer was told is not sold.
        condition = cls.status == QUEUED
        return cls(placed.order_id), actions, condition

    def confirm(self, placed: OrderPlaced, now: datetime) -> str:
        product = self._product
        order, order_actions, order_condition = self._terminal(placed, CONFIRMED, now, None)
        try:
            with TransactWrite(connection=product._get_connection().connection) as transaction:
                # Any version will do: with add_version_condition=False pynamodb only appends
                # "version + 1" (a stock change is a change), and the stock condition is the guard.
                current = product(placed.product_id, version=0)
                transaction.update(
                    current, actions=[product.stock.add(-placed.quantity), product.updated_at.set(now)],
                    condition=product.id.exists() & (product.stock >= placed.quantity),
                    add_version_condition=False)
                transaction.update(order, actions=order_actions, condition=order_condition)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons
            if len(reasons) == 2 and reasons[1] is not None and reasons[1].code == _CONDITION_FAILED:
                return ALREADY_APPLIED
            if len(reasons) == 2 and reasons[0] is not None and reasons[0].code == _CONDITION_FAILED:
                return STOCK_CHANGED
            if any(r is not None and r.code in ("TransactionConflict", "ThrottlingError",
                                                "ProvisionedThroughputExceeded") for r in reasons):
                raise StorageThrottled("DynamoDB transaction conflict or throttling") from exc
            _raise_transient(exc)
            raise
        return APPLIED

    def reject(self, placed: OrderPlaced, reason: str, now: datetime) -> str:
        order, actions, condition = self._terminal(placed, REJECTED, now, reason)
        try:
            order.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return ALREADY_APPLIED
            _raise_transient(exc)
            raise
        return APPLIED
