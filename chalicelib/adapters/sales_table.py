"""SalesTable: the sales read model, one row per seller and product, one write per event.

A row is `pk = <seller>`, `sk = product#<product_id>`: a seller's sales are one query. Counting a
fact is one TransactWriteItems call: the fact's key is put (`pk = fact#<key>`, only if absent) and
the row's numbers are added to, together or not at all, so a fact counts once. A name is one
conditional UpdateItem that keeps the newest product version's name.

While a rebuild runs, a marker item (`pk = rebuild`) holds live counting back: every live count
checks, in the same transaction, that no rebuild is under way. Without it a count landing while the
rebuild empties the table could lose its row but keep its fact's key (then the rebuild skips the
fact: a sale lost), or the reverse (counted twice). A held-back count is retried by its queue and
applies once the rebuild is done. The marker carries a deadline, so a rebuild that died does not
hold counting back for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import (
    CONDITION_FAILED, bind, cancellation_codes, condition_failed, connection_of, is_conflict, translate_transient,
)
from chalicelib.adapters.orders_table import OrderItem, order_of
from chalicelib.adapters.products_table import ProductItem
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.orders import Order, WriteOutcome
from chalicelib.domain.sales import NameChange, ProductSales, SaleFact

__all__ = ["SalesRowItem", "CountedItem", "RebuildItem", "SalesModels", "bind_sales_table", "PynamoSalesProjection",
           "PynamoSalesSources"]

_ROW = "product#"
_COUNTED = "fact#"
_REBUILD = "rebuild"


class SalesRowItem(Model):
    pk = UnicodeAttribute(hash_key=True)  # the seller
    sk = UnicodeAttribute(range_key=True)  # product#<product_id>
    product_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    name_version = NumberAttribute(null=True)
    orders = NumberAttribute(null=True)  # absent until a fact is counted: a named, unsold product
    units = NumberAttribute(null=True)
    revenue_cents = NumberAttribute(null=True)
    as_of = UTCDateTimeAttribute(null=True)  # when a fact last changed the row


class CountedItem(Model):
    pk = UnicodeAttribute(hash_key=True)  # fact#<key>
    sk = UnicodeAttribute(range_key=True)  # "fact"
    counted_at = UTCDateTimeAttribute()


class RebuildItem(Model):
    pk = UnicodeAttribute(hash_key=True)  # "rebuild"
    sk = UnicodeAttribute(range_key=True)  # "rebuild"
    until = NumberAttribute()  # epoch seconds: past it, the rebuild is taken for dead


SalesModels = tuple[type[SalesRowItem], type[CountedItem], type[RebuildItem]]


def bind_sales_table(*, table: str, region: str) -> SalesModels:
    return (bind(SalesRowItem, table=table, region=region), bind(CountedItem, table=table, region=region),
            bind(RebuildItem, table=table, region=region))


class PynamoSalesProjection:
    def __init__(self, models: SalesModels, clock: Callable[[], datetime]) -> None:
        self._row, self._counted, self._rebuild = models
        self._now = clock

    def count(self, fact: SaleFact, *, rebuilding: bool = False) -> WriteOutcome:
        """Raises DependencyUnavailable while a rebuild runs (unless it is the rebuild counting)."""
        row, counted, marker, now = self._row, self._counted, self._rebuild, self._now()
        try:
            with translate_transient(), TransactWrite(connection=connection_of(row)) as transaction:
                if not rebuilding:
                    transaction.condition_check(marker, _REBUILD, _REBUILD, condition=(
                        marker.pk.does_not_exist() | (marker.until < int(now.timestamp()))))
                transaction.save(counted(f"{_COUNTED}{fact.key}", "fact", counted_at=now),
                                 condition=counted.pk.does_not_exist())
                transaction.update(row(fact.seller, f"{_ROW}{fact.product_id}"), actions=[
                    row.product_id.set(fact.product_id), row.name.set(row.name | fact.product_name),
                    row.orders.add(fact.orders), row.units.add(fact.units),
                    row.revenue_cents.add(fact.revenue_cents), row.as_of.set(now)])
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            if not rebuilding and codes[:1] == [CONDITION_FAILED]:
                raise DependencyUnavailable("the sales read model is being rebuilt; counted after it") from exc
            if codes[int(not rebuilding):][:1] == [CONDITION_FAILED]:
                return WriteOutcome.ALREADY_APPLIED
            if is_conflict(exc):  # another consumer is counting on the same row: retry the record
                raise DependencyUnavailable("DynamoDB transaction conflict") from exc
            raise
        return WriteOutcome.APPLIED

    def rename(self, change: NameChange) -> WriteOutcome:
        row = self._row
        try:
            with translate_transient():
                row(change.seller, f"{_ROW}{change.product_id}").update(
                    actions=[row.product_id.set(change.product_id), row.name.set(change.name),
                             row.name_version.set(change.version)],
                    condition=row.name_version.does_not_exist() | (row.name_version < change.version))
        except UpdateError as exc:
            if condition_failed(exc):
                return WriteOutcome.ALREADY_APPLIED
            raise
        return WriteOutcome.APPLIED

    def sales_of(self, seller: str) -> list[ProductSales]:
        row = self._row
        with translate_transient():
            return [ProductSales(item.product_id, item.name or item.product_id, int(item.orders or 0),
                                 int(item.units or 0), int(item.revenue_cents or 0), item.as_of)
                    for item in row.query(seller, row.sk.startswith(_ROW), filter_condition=row.orders.exists())]

    def begin_rebuild(self, until: datetime) -> None:
        with translate_transient():
            self._rebuild(_REBUILD, _REBUILD, until=int(until.timestamp())).save()

    def end_rebuild(self) -> None:
        with translate_transient():
            self._rebuild(_REBUILD, _REBUILD).delete()

    def clear(self) -> int:
        cleared = 0
        with translate_transient(), self._row.batch_write() as batch:
            for item in self._row.scan(attributes_to_get=["pk", "sk"]):
                if item.pk == _REBUILD:
                    continue  # the marker of the rebuild that is clearing
                batch.delete(item)
                cleared += 1
        return cleared


class PynamoSalesSources:
    """The orders and products tables, scanned whole (a rebuild reads everything once)."""

    def __init__(self, order_model: type[OrderItem], product_model: type[ProductItem]) -> None:
        self._order = order_model
        self._product = product_model

    def orders(self) -> Iterator[Order]:
        with translate_transient():
            for item in self._order.scan():
                yield order_of(item)

    def product_names(self) -> Iterator[NameChange]:
        with translate_transient():
            for item in self._product.scan(attributes_to_get=["id", "owner", "name", "version"]):
                yield NameChange(item.owner, item.id, item.name, int(item.version or 0))
