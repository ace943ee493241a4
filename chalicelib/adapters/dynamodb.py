"""DynamoDB plumbing every table adapter shares: binding models to tables, and errors.

The one place that turns pynamodb's and botocore's DynamoDB errors into the project's own:
a false condition is `condition_failed`, a cancelled transaction is read through
`cancellation_codes`, and throttling or a service hiccup becomes DependencyUnavailable (the API
answers 503, a queue record is retried) through `translate_transient`. Nothing above the
adapters sees pynamodb.

Models are declared once per table, typed, at module level; `bind` makes the subclass that names
this deployment's table (read from the environment by the composition root), with fresh index
objects, so two bindings in one process never share an index.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from botocore.exceptions import ClientError
from pynamodb.attributes import Attribute
from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.indexes import Index
from pynamodb.models import Model

from chalicelib.domain.errors import DependencyUnavailable

__all__ = ["stamp_trace", "bind", "connection_of", "condition_failed", "cancellation_codes", "is_transient",
           "is_conflict", "translate_transient", "answers_throttling", "CONDITION_FAILED"]

M = TypeVar("M", bound=Model)
P = ParamSpec("P")
R = TypeVar("R")

CONDITION_FAILED = "ConditionalCheckFailed"  # a cancellation reason's code in a transaction
_CONDITION_FAILED_ERROR = "ConditionalCheckFailedException"  # a single write's error code
_CONFLICT_CODES = frozenset({"TransactionConflict", "TransactionConflictException"})
_TRANSIENT = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
    # inside a cancelled transaction
    "ThrottlingError", "ProvisionedThroughputExceeded",
})


def bind(model: type[M], *, table: str, region: str, **indexes: Index[Any]) -> type[M]:
    """`model` bound to `table` in `region`, with `indexes` (new Index instances) attached."""
    meta = type("Meta", (), {"table_name": table, "region": region})
    namespace: dict[str, Any] = {"Meta": meta, "__module__": model.__module__, **indexes}
    return cast(type[M], type(model.__name__, (model,), namespace))  # with Model's metaclass


def connection_of(model: type[Model]) -> Connection:
    """The model's own connection, so a transaction reuses its botocore session and client
    (a new Connection would build another session: ~0.15 s on a cold container)."""
    return model._get_connection().connection


def _code(exc: BaseException) -> str | None:
    if isinstance(exc, PynamoDBException):
        return exc.cause_response_code
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def condition_failed(exc: BaseException) -> bool:
    """A single conditional write (put, update, delete) found its condition false."""
    return _code(exc) == _CONDITION_FAILED_ERROR


def cancellation_codes(exc: TransactWriteError) -> list[str | None]:
    """Per item of a cancelled transaction, in order: why it was cancelled (None: not it)."""
    return [None if reason is None else reason.code for reason in exc.cancellation_reasons]


def is_conflict(exc: TransactWriteError) -> bool:
    """A concurrent transaction touched the same items (DynamoDB cancels one of them)."""
    return _code(exc) in _CONFLICT_CODES or any(code in _CONFLICT_CODES for code in cancellation_codes(exc))


def is_transient(exc: BaseException) -> bool:
    """A DynamoDB failure that a retry can fix (throttling, service hiccups)."""
    if _code(exc) in _TRANSIENT:
        return True
    return isinstance(exc, TransactWriteError) and any(code in _TRANSIENT for code in cancellation_codes(exc))


@contextmanager
def translate_transient(what: str = "DynamoDB") -> Iterator[None]:
    """Throttling and service hiccups inside become DependencyUnavailable; other errors pass."""
    try:
        yield
    except (PynamoDBException, ClientError) as exc:
        if is_transient(exc):
            raise DependencyUnavailable(f"{what} is busy ({_code(exc)}); retry shortly") from exc
        raise


def answers_throttling(method: Callable[P, R]) -> Callable[P, R]:
    """`translate_transient` around a whole repository method."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translate_transient():
            return method(*args, **kwargs)

    return wrapper


def stamp_trace(attribute: Attribute[str], header: str | None) -> list[Action]:
    """The write's X-Ray header set on the item (none when not traced): the table's stream hands
    it to the change's events, which join the writer's trace."""
    return [] if header is None else [attribute.set(header)]
