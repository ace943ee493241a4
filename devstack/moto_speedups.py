"""Fixes to the local AWS stand-in, so the local stack behaves at a realistic speed.

0. moto's server lists its own package directory (~150 stat calls, under a lock) on every request
   to learn its service names; they cannot change while it runs, so they are listed once.

1. moto's SQS asks for the time through datetime arithmetic for every message it looks at,
   several times per receive: with 2,000 messages in a queue a ReceiveMessage took 2.3 s and a
   SendMessage 0.1 s (measured). The same number from time.time() is ~50x cheaper.
2. moto's TransactWriteItems deep-copies every table it touches before writing, to roll back on
failure: O(table size) per transaction. With a few thousand orders, each order's transaction took
over 100 ms and got slower as the tables grew. Real DynamoDB does not slow down that way. We keep
moto's own logic and replace only its rollback: snapshot the items the transaction names, hand
moto the table itself instead of a copy, and restore those items if moto raises.
3. moto checks DynamoDB's 400 KB item limit by re-adding the sizes of every attribute already set
   each time it sets one while building an item: quadratic in the attribute count. A product has
   eleven attributes, so a 25-item BatchWriteItem cost 45 ms against 8.5 ms for one PutItem
   (measured): the batching that DynamoDB rewards looked barely worth it. An item being built
   only grows, so one check of the finished size raises exactly when moto's per-attribute checks
   would have.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import moto.backends as moto_backends
import moto.sqs.models as sqs_models

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.models.table import Table

__all__ = ["install"]

_state = threading.local()


def _table_deepcopy(self: Table, memo: dict[int, Any]) -> Table:
    if getattr(_state, "in_transaction", False):
        return self  # moto's "backup": our item snapshots do the rolling back
    clone = self.__class__.__new__(self.__class__)
    memo[id(self)] = clone
    for name, value in self.__dict__.items():
        clone.__dict__[name] = copy.deepcopy(value, memo)
    return clone


def _keys(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]):
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName", ""))
        if table is None:
            continue  # moto raises ResourceNotFound itself
        key = op["Item"] if "Item" in op else op.get("Key", {})
        if table.hash_key_attr not in key:
            continue  # moto raises the validation error itself
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        yield table, hash_key, range_key


def _snapshot(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[tuple]:
    snapshots = []
    for table, hash_key, range_key in _keys(backend, transact_items):
        try:
            item = table.get_item(hash_key, range_key)
        except Exception:  # an invalid key: moto reports it, and nothing is written
            continue
        snapshots.append((table, hash_key, range_key, copy.deepcopy(item)))
    return snapshots


def _restore(snapshots: list[tuple]) -> None:
    for table, hash_key, range_key, item in reversed(snapshots):
        try:
            table.delete_item(hash_key, range_key)
        except KeyError:
            pass
        if item is not None:
            table.put_item(item.to_json()["Attributes"])


def _fast_clock() -> None:
    slow_seconds, slow_millis = sqs_models.unix_time, sqs_models.unix_time_millis

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else slow_seconds(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else slow_millis(dt)

    sqs_models.unix_time, sqs_models.unix_time_millis = unix_time, unix_time_millis


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    self.hash_key = hash_key
    self.range_key = range_key
    values = {key: DynamoType(value) for key, value in attrs.items()}
    if sum(bytesize(key) + value.size() for key, value in values.items()) > _ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict()
    dict.update(self.attrs, values)  # the finished size is checked above; later sets check as before


_ITEM_SIZE_LIMIT = 405000  # moto's own figure: "the actual limit is between 409 and 410KB"


def install() -> None:
    """Patch moto in this process (idempotent)."""
    original = DynamoDBBackend.transact_write_items
    if getattr(original, "storefront_speedup", False):
        return
    _fast_clock()
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        snapshots = _snapshot(self, transact_items)
        _state.in_transaction = True
        try:
            return original(self, transact_items)
        except BaseException:
            _restore(snapshots)
            raise
        finally:
            _state.in_transaction = False

    transact_write_items.storefront_speedup = True  # type: ignore[attr-defined]
    Table.__deepcopy__ = _table_deepcopy  # type: ignore[method-assign]
    Item.__init__ = _item_init  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
