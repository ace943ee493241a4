"""Faults injected into the AWS calls the app makes, through botocore's public event hooks.

Nothing of the app is patched: handlers are registered on the event system of each botocore
client the app uses (`client.meta.events`). The boto3 clients of the app's container are named
by the container itself; pynamodb makes a client per connection, which its public
`pre_dynamodb_send` signal names before the first call, so the hooks are registered then.

Three hook points, four kinds of fault:

- `before-send` (on the wire, below botocore's retries): a seeded share of requests is answered
  with an error, as a throttling DynamoDB answers. The SDK retries them as it would on AWS; what
  it gives up on reaches the app.
- `before-call` (above the retries): the first N calls of an operation fail as if the SDK had
  exhausted its retries. The app sees each of them.
- `before-call` and `after-call` together, for EventBridge's PutEvents, which answers per entry:
  some entries of a call are refused (never put) and named failed in its answer, the others put.
- `after-call`: the Nth write of a consumer is made, then the process dies (ProcessKilled, a
  BaseException: no `except Exception` of the app or of Powertools' batch processor stops it,
  as nothing stops a Lambda sandbox being killed).

Only the consumer a fault aims at is hurt: the delivery driver names the consumer it is running
(`running`), and the test's own setup calls are never touched.
"""

from __future__ import annotations

import contextvars
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from pynamodb.signals import pre_dynamodb_send

__all__ = ["Faults", "ProcessKilled", "running", "WRITES", "app_clients"]

running: contextvars.ContextVar[str | None] = contextvars.ContextVar("running_consumer", default=None)

# Calls that change something: a kill after one of them leaves part of a batch's work written.
WRITES = {
    "dynamodb": frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}),
    "s3": frozenset({"PutObject", "DeleteObject", "DeleteObjects", "CopyObject"}),
    "sns": frozenset({"Publish", "PublishBatch"}),
}

_WIRE_ERRORS = {
    "dynamodb": lambda code: json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                                         "message": "injected by the fault suite"}).encode(),
    "s3": lambda code: (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        "<Message>injected by the fault suite</Message></Error>").encode(),
    "sns": lambda code: (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code>"
                         "<Message>injected by the fault suite</Message></Error>"
                         "<RequestId>fault</RequestId></ErrorResponse>").encode(),
}


def app_clients() -> list[Any]:
    """The boto3 clients of the app's container (pynamodb's are found as they are used)."""
    from tests.support.app_wiring import app_aws

    aws = app_aws()
    return [aws.s3, aws.sns, aws.dynamodb_bulk, aws.sqs, aws.events]


# The service an event names (botocore names a hook's event by the service's id, which is not
# always its endpoint prefix) -> the name faults are aimed by.
_SERVICE_OF_EVENT = {"eventbridge": "events"}
_REFUSED = "fault_suite_refused_entries"  # in the call's context: the entries refused, by index


def _service_of(event_name: str) -> str:
    service = event_name.split(".")[1]
    return _SERVICE_OF_EVENT.get(service, service)


class ProcessKilled(BaseException):
    """The Lambda sandbox died (timeout, out of memory) in the middle of an invocation."""


class _Body:
    """The raw stream of an injected HTTP response (botocore reads `.stream()`)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@dataclass
class _Share:
    service: str
    code: str
    status: int
    share: float
    rng: random.Random


@dataclass
class _First:
    service: str
    operations: frozenset[str]
    code: str
    status: int
    left: int
    when: Callable[[dict[str, Any]], bool]


@dataclass
class _Refusal:
    indexes: frozenset[int]
    code: str
    left: int


@dataclass
class Faults:
    """The faults aimed at one consumer (a handler name), and what they did."""

    target: str
    seed: int = 8
    injected: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    _shares: list[_Share] = field(default_factory=list)
    _firsts: list[_First] = field(default_factory=list)
    _refusals: list[_Refusal] = field(default_factory=list)
    _kill_after: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _registered: list[tuple[Any, str, Any]] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)

    # -- what to inject --------------------------------------------------------------------

    def throttle(self, service: str, share: float, code: str = "ProvisionedThroughputExceededException",
                 status: int = 400) -> None:
        """Answer a seeded share of the target's `service` requests on the wire with `code`."""
        self._shares.append(_Share(service, code, status, share, random.Random(f"{self.seed}:{service}")))

    def fail_first(self, service: str, operations: set[str], times: int, code: str, status: int,
                   when: Callable[[dict[str, Any]], bool] = lambda params: True) -> None:
        """The target's next `times` calls of `operations` (whose request `when` accepts) fail
        with `code`, past the SDK's retries."""
        self._firsts.append(_First(service, frozenset(operations), code, status, times, when))

    def refuse_entries(self, indexes: set[int], times: int, code: str = "InternalFailure") -> None:
        """In the target's next `times` PutEvents calls, the entries at `indexes` (of each call's
        own entries) are not put and the answer names them failed with `code`; the rest are put."""
        self._refusals.append(_Refusal(frozenset(indexes), code, times))

    def kill_after_writes(self, count: int) -> None:
        """The target's `count`-th write is made, then its process dies (once)."""
        self._kill_after = count

    # -- wiring ----------------------------------------------------------------------------

    @contextmanager
    def installed(self, boto3_clients: list[Any]) -> Iterator["Faults"]:
        """Hooks on `boto3_clients` and on every pynamodb client, for the duration of the block."""
        for client in boto3_clients:
            self._hook(client)
        pre_dynamodb_send.connect(self._on_pynamodb_send, weak=False)
        try:
            yield self
        finally:
            pre_dynamodb_send.disconnect(self._on_pynamodb_send)
            for events, name, handler in self._registered:
                events.unregister(name, handler)

    def _on_pynamodb_send(self, connection: Any, **_: Any) -> None:
        self._hook(connection.client)

    def _hook(self, client: Any) -> None:
        with self._lock:
            if id(client) in self._seen:
                return
            self._seen.add(id(client))
            service = client.meta.service_model.endpoint_prefix
            events = client.meta.events
            for name, handler in ((f"before-send.{service}", self._on_wire), (f"before-call.{service}", self._on_call),
                                  (f"after-call.{service}", self._after_call)):
                events.register_first(name, handler)
                self._registered.append((events, name, handler))

    def _aimed(self) -> bool:
        return running.get() == self.target

    # -- the hooks -------------------------------------------------------------------------

    def _on_wire(self, event_name: str, **_: Any) -> AWSResponse | None:
        if not self._aimed():
            return None
        service = _service_of(event_name)
        with self._lock:
            for rule in self._shares:
                if rule.service == service and rule.rng.random() < rule.share:
                    self.injected[f"{service}:{rule.code}"] += 1
                    return AWSResponse("https://fault.invalid", rule.status, {}, _Body(_WIRE_ERRORS[service](rule.code)))
        return None

    def _on_call(self, event_name: str, params: dict[str, Any], context: dict[str, Any] | None = None,
                 **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self._aimed():
            return None
        service, operation = _service_of(event_name), event_name.split(".")[2]
        with self._lock:
            for rule in self._firsts:
                if rule.service == service and operation in rule.operations and rule.left > 0 and rule.when(params):
                    rule.left -= 1
                    self.injected[f"{operation}:{rule.code}"] += 1
                    parsed = {"Error": {"Code": rule.code, "Message": "injected by the fault suite"},
                              "ResponseMetadata": {"HTTPStatusCode": rule.status, "HTTPHeaders": {}}}
                    return AWSResponse("https://fault.invalid", rule.status, {}, None), parsed
        if (service, operation) == ("events", "PutEvents"):
            return self._refuse(params, context if context is not None else {})
        return None

    def _refuse(self, params: dict[str, Any], context: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]] | None:
        """PutEvents with the entries of the first refusal left dropped from the request (their
        failures are written into the answer by `_after_call`)."""
        body = json.loads(params["body"])
        entries = body["Entries"]
        with self._lock:
            rule = next((r for r in self._refusals if r.left > 0), None)
            refused = sorted(i for i in rule.indexes if i < len(entries)) if rule else []
            if rule is None or not refused:
                return None
            rule.left -= 1
            self.injected[f"PutEvents:{rule.code}"] += len(refused)
        context[_REFUSED] = (refused, rule.code)
        if len(refused) == len(entries):  # nothing to put: answered here
            parsed = {"FailedEntryCount": 0, "Entries": [],
                      "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}}}
            return AWSResponse("https://fault.invalid", 200, {}, None), parsed
        body["Entries"] = [e for i, e in enumerate(entries) if i not in refused]
        params["body"] = json.dumps(body).encode()
        params["headers"].pop("Content-Length", None)
        return None

    def _after_call(self, event_name: str, http_response: Any = None, parsed: dict[str, Any] | None = None,
                    context: dict[str, Any] | None = None, **_: Any) -> None:
        if context and _REFUSED in context and parsed is not None and "Entries" in parsed:
            refused, code = context.pop(_REFUSED)
            for index in refused:  # the answer's entries are in the request's order
                parsed["Entries"].insert(index, {"ErrorCode": code, "ErrorMessage": "injected by the fault suite"})
            parsed["FailedEntryCount"] = parsed.get("FailedEntryCount", 0) + len(refused)
        if not self._aimed():
            return
        service, operation = _service_of(event_name), event_name.split(".")[2]
        if operation not in WRITES.get(service, ()) or getattr(http_response, "status_code", 200) >= 300:
            return
        with self._lock:
            self.writes += 1
            if self._kill_after is None or self.writes != self._kill_after:
                return
            self.injected["killed"] += 1
        raise ProcessKilled(f"killed after write {self.writes} ({operation})")
