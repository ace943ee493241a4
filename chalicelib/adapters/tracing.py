"""Tracing behind one small interface, so the X-Ray SDK (end of support Feb 2027) can be swapped
for OpenTelemetry without touching handlers.

Lambda opens each invocation's segment itself (continuing the caller's trace for an HTTP request,
or, for an SQS batch, starting a new trace linked to the senders' traces) and hands it to the
code in `_X_AMZN_TRACE_ID`; the X-Ray SDK continues that segment. We add one subsegment per
invocation carrying the annotations, annotated `cold_start` in a container's (a process's) first
invocation. Subsegments leave through the SDK's UDP emitter to the daemon at
AWS_XRAY_DAEMON_ADDRESS. Only botocore is patched (not patch_all), so every AWS call is a
subsegment, naming its resource: what the SDK's parameter whitelist names (a table, queue, topic,
bucket), and what it cannot (`_nested_resources`).
"""

from __future__ import annotations

import re
import traceback
from email.utils import parseaddr
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

__all__ = ["Span", "Tracer", "XRayTracer", "NoTracer", "parse_trace_header"]

_HEADER_PART = re.compile(r"(Root|Parent|Sampled)=([^;]*)")


def parse_trace_header(value: str | None) -> dict[str, str]:
    """The Root/Parent/Sampled parts of an X-Amzn-Trace-Id / AWSTraceHeader value."""
    return dict(_HEADER_PART.findall(value or ""))


class Span(Protocol):
    trace_id: str | None

    def annotate(self, **values: str | int | bool | None) -> None: ...

    def set_status(self, status: int) -> None: ...

    def record_error(self, exc: BaseException) -> None: ...


class Tracer(Protocol):
    def invocation(self, name: str) -> AbstractContextManager[Span]:
        """The span of one invocation, under the segment Lambda opened for it."""

    def subsegment(self, name: str) -> AbstractContextManager[Span]: ...

    def annotate(self, **values: str | int | bool | None) -> None:
        """Searchable annotations on the current invocation (None values are skipped)."""

    def propagation_header(self) -> str | None:
        """The header to send downstream (SQS AWSTraceHeader) so the next hop joins this trace."""


class _NoSpan:
    trace_id: str | None = None

    def annotate(self, **values: str | int | bool | None) -> None:
        pass

    def set_status(self, status: int) -> None:
        pass

    def record_error(self, exc: BaseException) -> None:
        pass


class NoTracer:
    """For unit tests and TRACING=off."""

    @contextmanager
    def invocation(self, name: str) -> Iterator[_NoSpan]:
        yield _NoSpan()

    @contextmanager
    def subsegment(self, name: str) -> Iterator[_NoSpan]:
        yield _NoSpan()

    def annotate(self, **values: str | int | bool | None) -> None:
        pass

    def propagation_header(self) -> str | None:
        return None


class _XRaySpan:
    """A subsegment; `entity` is None when no trace is active (the SDK then records nothing)."""

    def __init__(self, entity: Any, trace_id: str | None) -> None:
        self._entity = entity
        self.trace_id = trace_id

    def annotate(self, **values: str | int | bool | None) -> None:
        if self._entity is None:
            return
        for key, value in values.items():
            if value is not None:
                self._entity.put_annotation(key, value)

    def set_status(self, status: int) -> None:
        if self._entity is not None:
            self._entity.apply_status_code(status)

    def record_error(self, exc: BaseException) -> None:
        if self._entity is not None:
            self._entity.add_exception(exc, traceback.extract_tb(exc.__traceback__))


# Top-level parameters naming the resource of services the SDK's whitelist does not list, and the
# keys they are recorded under (the SDK's own snake_case of them).
_UNLISTED_PARAMETERS = {"stateMachineArn": "state_machine_arn", "SecretId": "secret_id",
                        "UserPoolId": "user_pool_id", "FromEmailAddress": "email_identity"}


def _nested_resources(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The resources of the calls the SDK's parameter whitelist (aws_xray_sdk/ext/resources/
    aws_para_whitelist.json) leaves unnamed: it can copy a top-level parameter or the keys of a
    top-level map, not a field inside a list's items (a transaction's tables, PutEvents' buses), and
    it lists no Step Functions, Secrets Manager, Cognito or SES operation. Written under the keys the
    SDK uses for the same resources elsewhere (`table_names`)."""
    if operation in ("TransactWriteItems", "TransactGetItems"):
        tables = {action.get("TableName") for item in params.get("TransactItems") or ()
                  for action in item.values() if isinstance(action, Mapping)}
        return {"table_names": sorted(t for t in tables if t)}
    if operation == "PutEvents":
        buses = {entry.get("EventBusName") or "default" for entry in params.get("Entries") or ()}
        return {"event_bus_name": ", ".join(sorted(buses))} if buses else {}
    named = {key: params[name] for name, key in _UNLISTED_PARAMETERS.items() if params.get(name)}
    if "email_identity" in named:  # the identity is the address, not "Display Name <address>"
        named["email_identity"] = parseaddr(str(named["email_identity"]))[1] or named["email_identity"]
    return named


def _name_nested_resources() -> None:
    """Wraps the SDK's botocore meta processor (looked up by its patch at every call) so each AWS
    call's subsegment also names what `_nested_resources` finds in its request. The SDK has no hook
    for this; its version is pinned, and tests/unit/adapters/test_tracing.py checks the names."""
    import importlib

    # The module (the package re-exports its `patch` function under the same name).
    botocore_patch = importlib.import_module("aws_xray_sdk.ext.botocore.patch")
    recorded = botocore_patch.aws_meta_processor
    if getattr(recorded, "names_nested_resources", False):
        return

    def meta_processor(wrapped: Any, instance: Any, args: Any, kwargs: Any, return_value: Any,
                       exception: Any, subsegment: Any, stack: Any) -> None:
        recorded(wrapped, instance, args, kwargs, return_value, exception, subsegment, stack)
        operation, params = (args[0], args[1]) if len(args) >= 2 else ("", {})
        aws = getattr(subsegment, "aws", None)  # a dummy subsegment (not sampled) may have none
        if isinstance(params, Mapping) and isinstance(aws, dict):
            aws.update(_nested_resources(str(operation), params))

    setattr(meta_processor, "names_nested_resources", True)
    setattr(botocore_patch, "aws_meta_processor", meta_processor)


class XRayTracer:
    def __init__(self, *, service: str) -> None:
        from aws_xray_sdk.core import patch, xray_recorder

        xray_recorder.configure(service=service, context_missing="IGNORE_ERROR")
        patch(("botocore",))
        _name_nested_resources()
        self._recorder = xray_recorder
        # Lambda runs one invocation at a time per container, and this tracer is made once per
        # container: only its first invocation paid for the imports.
        self._cold_start = True

    @contextmanager
    def invocation(self, name: str) -> Iterator[_XRaySpan]:
        with self._span(name, with_trace_id=True) as span:
            cold_start, self._cold_start = self._cold_start, False
            if cold_start:
                span.annotate(cold_start=True)
            yield span

    def subsegment(self, name: str) -> AbstractContextManager[_XRaySpan]:
        return self._span(name, with_trace_id=False)

    @contextmanager
    def _span(self, name: str, *, with_trace_id: bool) -> Iterator[_XRaySpan]:
        """A subsegment of the current segment (none without one: the SDK ignores a missing
        context), recording an exception that leaves it."""
        recorder = self._recorder
        entity = recorder.begin_subsegment(name)
        trace_id = None
        if with_trace_id and entity is not None:
            trace_id = getattr(recorder.current_segment(), "trace_id", None)
        span = _XRaySpan(entity, trace_id)
        try:
            yield span
        except BaseException as exc:
            span.record_error(exc)
            raise
        finally:
            if entity is not None:
                recorder.end_subsegment()

    def annotate(self, **values: str | int | bool | None) -> None:
        entity = self._recorder.current_subsegment()
        if entity is not None:
            _XRaySpan(entity, None).annotate(**values)

    def propagation_header(self) -> str | None:
        entity = self._recorder.get_trace_entity()
        if entity is None:
            return None
        trace_id = getattr(entity, "trace_id", None) or entity.parent_segment.trace_id
        return f"Root={trace_id};Parent={entity.id};Sampled={1 if entity.sampled else 0}"
