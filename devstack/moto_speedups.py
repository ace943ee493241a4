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
4. moto answers every Query by sorting the whole table by its primary key (comparing typed values
   in Python), then filtering for the wanted key, then sorting the matches again by the query's own
   key, and sizing and comparing every item of the partition: a Query for 175 items of an
   index of a 10,000-item table took 120-200 ms (measured), where DynamoDB's cost follows the items
   it reads. moto now gets, unsorted, only the items its key condition can select (a Query on the
   table: the partition; on an index: the items passing moto's own key test, done with a quicker
   reading of string values), and runs its Query on those as before. The first sort cannot change
   the answer: moto sorts the matches again by a key unique to each item.
5. moto parses every request against the botocore model, visiting all ten members of the
   AttributeValue structure for each attribute of each item, and sizes items through a chain of
   type tests per attribute: for a 25-item BatchWriteItem that was most of its cost, and made
   the batch writes DynamoDB rewards look less worth it than they are. An attribute value of a
   plain type (S, N, SS, NS, NULL, BOOL: no binary to decode, nothing nested) parses to itself,
   so it is now taken as it is, and strings and numbers are sized directly, with moto's formulas.

6. moto's SendMessage reads its queue's `attributes` up to four times to learn one of them,
   ContentBasedDeduplication, and `attributes` counts the queue's visible, in-flight and delayed
   messages each time, walking every message: a send to a queue holding 5,000 messages walked
   20,000, so the event bus's rules (which send one message per matched event) slowed with the
   read side's backlog, to 21 events a second with a few thousand queued (measured). While moto
   sends, `attributes` now answers only what the send reads, spelled as moto spells it.

Each fix replaces private moto code, so it is only right for the moto it was read from and
checked against (tests/integration/devstack/test_moto_speedups.py compares it with moto's own
results): install() refuses any other version. To move to a new moto, read its code again, run
those tests against it, then change MOTO_VERSION.
"""

from __future__ import annotations

import copy
import threading
import time
from importlib import metadata
from typing import Any, Callable, Iterable, Iterator

import moto.backends as moto_backends
import moto.sqs.models as sqs_models
from moto.core.parse import BaseJSONParser
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.comparisons import get_comparison_func
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.models.table import Table

__all__ = ["MOTO_VERSION", "UnsupportedMotoVersion", "install"]

MOTO_VERSION = "5.2.5"  # the moto these patches were written and tested against


class UnsupportedMotoVersion(RuntimeError):
    """The installed moto is not the one these patches were written against."""

_state = threading.local()


def _table_deepcopy(self: Table, memo: dict[int, Any]) -> Table:
    if getattr(_state, "in_transaction", False):
        return self  # moto's "backup": our item snapshots do the rolling back
    clone: Table = object.__new__(self.__class__)
    memo[id(self)] = clone
    for name, value in self.__dict__.items():
        clone.__dict__[name] = copy.deepcopy(value, memo)
    return clone


_Snapshot = tuple[Table, DynamoType, "DynamoType | None", "Item | None"]


def _keys(backend: DynamoDBBackend,
          transact_items: list[dict[str, Any]]) -> Iterator[tuple[Table, DynamoType, DynamoType | None]]:
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


def _snapshot(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_Snapshot]:
    snapshots = []
    for table, hash_key, range_key in _keys(backend, transact_items):
        try:
            item = table.get_item(hash_key, range_key)
        except Exception:  # an invalid key: moto reports it, and nothing is written
            continue
        snapshots.append((table, hash_key, range_key, copy.deepcopy(item)))
    return snapshots


def _restore(snapshots: list[_Snapshot]) -> None:
    for table, hash_key, range_key, item in reversed(snapshots):
        try:
            table.delete_item(hash_key, range_key)
        except KeyError:
            pass
        if item is not None:
            table.put_item(item.to_json()["Attributes"])


def _fast_clock() -> None:
    # moto's SQS imports these names from moto.core.utils; getattr/setattr replace its own copies.
    slow_seconds, slow_millis = getattr(sqs_models, "unix_time"), getattr(sqs_models, "unix_time_millis")

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else slow_seconds(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else slow_millis(dt)

    setattr(sqs_models, "unix_time", unix_time)
    setattr(sqs_models, "unix_time_millis", unix_time_millis)


_queue_attributes = sqs_models.Queue.attributes


def _sending_attributes(self: Any) -> dict[str, Any]:
    if not getattr(_state, "sending", False):
        return dict(_queue_attributes.fget(self))  # type: ignore[attr-defined]
    # All that moto's send path reads (_validate_message, send_message, add_message): the
    # FIFO-only ContentBasedDeduplication, a bool rendered "true"/"false" as `attributes` renders it.
    return {"ContentBasedDeduplication": str(self.content_based_deduplication).lower()} if self.fifo_queue else {}


def _cheap_sends() -> None:
    original = sqs_models.SQSBackend.send_message

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _state.sending = True
        try:
            return original(self, *args, **kwargs)
        finally:
            _state.sending = False

    sqs_models.SQSBackend.send_message = send_message  # type: ignore[method-assign]
    sqs_models.Queue.attributes = property(_sending_attributes)  # type: ignore[assignment,method-assign]


def _all_items(self: Table) -> list[Item]:
    candidates: Callable[[], list[Item]] | None = getattr(_state, "candidates", None)
    if candidates is None:
        return _sorted_all_items(self)
    _state.candidates = None  # one Query reads the table once
    return candidates()


_sorted_all_items = Table.all_items


def _every_item(table: Table) -> Iterator[Item]:
    # moto types `items` as a dict of items; with a range key each value is a dict of items.
    groups: dict[DynamoType, Any] = table.items
    for group in groups.values():
        if table.range_key_attr:
            yield from group.values()
        else:
            yield group


def _partition(table: Table, hash_key: DynamoType) -> list[Item]:
    groups: dict[DynamoType, Any] = table.items
    group = groups.get(hash_key)
    if group is None:
        return []
    return list(group.values()) if table.range_key_attr else [group]


def _cast(value: DynamoType) -> Any:
    return value.value if value.type == "S" else value.cast_value  # moto's cast_value, quicker for S


def _matches_index_key(hash_conditions: list[tuple[str, DynamoType]],
                       range_conditions: list[tuple[str, str, list[DynamoType]]]) -> Callable[[Item], bool]:
    """moto's own test of an item against a Query's key condition on an index, quicker; it keeps
    every item moto would keep (moto tests the ones it keeps again)."""
    wanted = [(name, value.type, _cast(value)) for name, value in hash_conditions]
    wanted += [(name, values[0].type, _cast(values[0])) for name, _, values in range_conditions[:-1]]
    compared = None
    if range_conditions:
        name, comparison, values = range_conditions[-1]
        compared = (name, get_comparison_func(comparison), [_cast(v) for v in values])

    def keep(item: Item) -> bool:
        for name, kind, cast in wanted:
            value = item.attrs.get(name)
            if value is None or value.type != kind or _cast(value) != cast:
                return False
        if compared is None:
            return True
        value = item.attrs.get(compared[0])
        if value is None:
            return False
        try:
            return bool(compared[1](_cast(value), *compared[2]))
        except TypeError:
            return True  # values of another type: moto decides

    return keep


def _index_candidates(table: Table, hash_conditions: list[tuple[str, DynamoType]],
                      range_conditions: list[tuple[str, str, list[DynamoType]]]) -> list[Item]:
    keep = _matches_index_key(hash_conditions, range_conditions)
    items: Iterable[Item] = _every_item(table)
    if hash_conditions and hash_conditions[0][1].type == "S":  # the usual case, narrowed in one pass first
        name, wanted = hash_conditions[0][0], hash_conditions[0][1].value
        items = [i for i in items if (v := i.attrs.get(name)) is not None and v.value == wanted and v.type == "S"]
    if len(range_conditions) == 1 and all(v.type == "S" for v in range_conditions[0][2]):
        name, comparison, values = range_conditions[0]
        compare, bounds = get_comparison_func(comparison), [v.value for v in values]
        items = [i for i in items if (v := i.attrs.get(name)) is not None and (v.type != "S" or compare(v.value, *bounds))]
    return [item for item in items if keep(item)]


def _query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    """moto's Query, given as candidates only the items its key condition can select."""
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name:
        _state.candidates = lambda: _index_candidates(self, kwargs.get("hash_key_conditions") or [],
                                                      kwargs.get("range_key_conditions") or [])
    elif hash_key is not None:
        _state.candidates = lambda: _partition(self, hash_key)
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        _state.candidates = None


_original_query = Table.query


def _size(value: DynamoType) -> int:
    """DynamoType.size(), without its chain of type tests for strings and numbers."""
    if value.type == "S":
        return bytesize(value.value)
    if value.type == "N":
        return len(str(value.value))
    return value.size()


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    self.hash_key = hash_key
    self.range_key = range_key
    values = {key: DynamoType(value) for key, value in attrs.items()}
    if sum(bytesize(key) + _size(value) for key, value in values.items()) > _ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict()
    dict.update(self.attrs, values)  # the finished size is checked above; later sets check as before


_ITEM_SIZE_LIMIT = 405000  # moto's own figure: "the actual limit is between 409 and 410KB"
_SCALARS = {"S": str, "N": str, "NULL": bool, "BOOL": bool}
_SETS = ("SS", "NS")


def _parse_structure(self: BaseJSONParser, shape: Any, value: Any) -> Any:
    """moto's parse of a JSON structure; an AttributeValue of a plain type is its own parse."""
    if shape.name == "AttributeValue" and type(value) is dict and len(value) == 1:
        (kind, member), = value.items()
        if type(member) is _SCALARS.get(kind):
            return self.MAP_TYPE({kind: member})
        if kind in _SETS and type(member) is list and all(type(v) is str for v in member):
            return self.MAP_TYPE({kind: list(member)})
    return _original_parse_structure(self, shape, value)


_original_parse_structure: Callable[[BaseJSONParser, Any, Any], Any] = BaseJSONParser._parse_structure


def install() -> None:
    """Patch moto in this process (idempotent).

    Raises UnsupportedMotoVersion, before patching anything, unless moto is MOTO_VERSION.
    """
    found = metadata.version("moto")
    if found != MOTO_VERSION:
        raise UnsupportedMotoVersion(
            f"devstack.moto_speedups patches moto {MOTO_VERSION}'s private code, but moto {found} is "
            f"installed: install moto=={MOTO_VERSION} (requirements-dev.txt), or check the patches "
            "against the new moto (tests/integration/devstack/test_moto_speedups.py) and update MOTO_VERSION"
        )
    original: Callable[[DynamoDBBackend, list[dict[str, Any]]], None] = DynamoDBBackend.transact_write_items
    if getattr(original, "storefront_speedup", False):
        return
    _fast_clock()
    _cheap_sends()
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
    setattr(Table, "__deepcopy__", _table_deepcopy)  # setattr: Table declares no __deepcopy__ to assign
    Item.__init__ = _item_init  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    BaseJSONParser._parse_structure = _parse_structure  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
