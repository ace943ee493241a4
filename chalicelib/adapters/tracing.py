"""Tracing behind one small interface, so the X-Ray SDK (end of support Feb 2027) can be swapped
for OpenTelemetry without touching handlers.

In Lambda the service opens the function's segment; we add one subsegment per invocation carrying
the annotations. Outside Lambda (the local stack) we open the segment ourselves as Lambda would:
continuing the caller's trace header (HTTP), or, for SQS-triggered invocations, starting a new
trace linked to the senders' traces. The first invocation of a container is annotated
`cold_start`. Segments leave through the SDK's UDP
emitter to the daemon at AWS_XRAY_DAEMON_ADDRESS: Lambda's daemon on AWS, devstack's stand-in
locally. Only botocore is patched (not patch_all), so every AWS call is a subsegment.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Protocol, Sequence

__all__ = ["Span", "Tracer", "XRayTracer", "NoTracer", "parse_trace_header"]

_HEADER_PART = re.compile(r"(Root|Parent|Sampled)=([^;]*)")


def parse_trace_header(value: str | None) -> dict[str, str]:
    """The Root/Parent/Sampled parts of an X-Amzn-Trace-Id / AWSTraceHeader value."""
    return dict(_HEADER_PART.findall(value or ""))


# X-Ray links a segment to at most 20 other traces.
_MAX_LINKS = 20


def _links(headers: Sequence[str]) -> list[dict[str, str]]:
    """X-Ray span links to the traces named by `headers` (deduplicated, at most 20)."""
    found: dict[str, dict[str, str]] = {}
    for header in headers:
        parts = parse_trace_header(header)
        if parts.get("Root") and parts["Root"] not in found and len(found) < _MAX_LINKS:
            found[parts["Root"]] = {"trace_id": parts["Root"], **({"id": parts["Parent"]} if parts.get("Parent") else {})}
    return list(found.values())


class Span(Protocol):
    trace_id: str | None

    def annotate(self, **values: str | int | bool) -> None: ...

    def set_status(self, status: int) -> None: ...

    def record_error(self, exc: BaseException) -> None: ...


class Tracer(Protocol):
    def invocation(self, name: str, *, function: str, trace_header: str | None = None,
                   links: Sequence[str] = ()) -> Any:
        """Context manager opening the span of one invocation -> Span.

        `trace_header` continues the caller's trace (HTTP). `links` are the trace headers of the
        messages that triggered it (SQS): the invocation starts its own trace linked to them, as
        Lambda does.
        """

    def subsegment(self, name: str) -> Any: ...

    def annotate(self, **values: str | int | bool | None) -> None:
        """Searchable annotations on the current invocation (None values are skipped)."""

    def propagation_header(self) -> str | None:
        """The header to send downstream (SQS AWSTraceHeader) so the next hop joins this trace."""


class _NoSpan:
    trace_id: str | None = None

    def annotate(self, **values: str | int | bool) -> None:
        pass

    def set_status(self, status: int) -> None:
        pass

    def record_error(self, exc: BaseException) -> None:
        pass


class NoTracer:
    """For unit tests and TRACING=off."""

    @contextmanager
    def invocation(self, name: str, *, function: str, trace_header: str | None = None,
                   links: Sequence[str] = ()) -> Iterator[_NoSpan]:
        yield _NoSpan()

    @contextmanager
    def subsegment(self, name: str) -> Iterator[_NoSpan]:
        yield _NoSpan()

    def annotate(self, **values: str | int | bool | None) -> None:
        pass

    def propagation_header(self) -> str | None:
        return None


class _XRaySpan:
    def __init__(self, entity: Any, trace_id: str | None) -> None:
        self._entity = entity
        self.trace_id = trace_id

    def annotate(self, **values: str | int | bool) -> None:
        for key, value in values.items():
            if value is not None:
                self._entity.put_annotation(key, value)

    def set_status(self, status: int) -> None:
        self._entity.apply_status_code(status)

    def record_error(self, exc: BaseException) -> None:
        import traceback

        self._entity.add_exception(exc, traceback.extract_tb(exc.__traceback__))


class XRayTracer:
    def __init__(self, *, service: str) -> None:
        from aws_xray_sdk.core import patch, xray_recorder

        self._in_lambda = "LAMBDA_TASK_ROOT" in os.environ
        options: dict[str, Any] = {"service": service, "context_missing": "IGNORE_ERROR"}
        if not self._in_lambda:
            # Locally every trace is kept; centralised sampling rules need a real daemon.
            from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

            options["sampler"] = LocalSampler(
                {"version": 2, "rules": [], "default": {"fixed_target": 1, "rate": 1.0}})
        xray_recorder.configure(**options)
        patch(("botocore",))
        self._recorder = xray_recorder
        # Idle "containers" per function, as Lambda reuses them: an invocation that finds none idle
        # starts a new one, which is a cold start. In Lambda, and in the local stack's container
        # processes, the process is the container and runs one invocation at a time, so only its
        # first is cold; with DEVSTACK_CONTAINERS=thread every function runs in one process,
        # concurrently, and this counts what Lambda would have started.
        self._idle: dict[str, int] = {}
        self._idle_lock = threading.Lock()

    def _start_container(self, function: str) -> bool:
        """Take an idle container of `function`; True when none was idle (a cold start)."""
        with self._idle_lock:
            idle = self._idle.get(function, 0)
            self._idle[function] = max(idle - 1, 0)
        return idle == 0

    def _free_container(self, function: str) -> None:
        with self._idle_lock:
            self._idle[function] = self._idle.get(function, 0) + 1

    @contextmanager
    def invocation(self, name: str, *, function: str, trace_header: str | None = None,
                   links: Sequence[str] = ()) -> Iterator[_XRaySpan]:
        recorder = self._recorder
        segment = None  # in Lambda, the service owns the function's segment (and adds the links)
        if self._in_lambda:
            subsegment = recorder.begin_subsegment(name)
            trace_id = getattr(recorder.current_segment(), "trace_id", None)
        else:
            parts = parse_trace_header(trace_header)
            segment = recorder.begin_segment(
                name=function, traceid=parts.get("Root") or None, parent_id=parts.get("Parent") or None,
                sampling=0 if parts.get("Sampled") == "0" else 1)
            segment.origin = "AWS::Lambda::Function"
            segment_links = _links(links)
            if segment_links:
                segment.links = segment_links  # serialised with the segment document
            subsegment = recorder.begin_subsegment(name)
            trace_id = segment.trace_id
        span = _XRaySpan(subsegment, trace_id)
        if self._start_container(function):
            span.annotate(cold_start=True)
        try:
            yield span
        except BaseException as exc:
            span.record_error(exc)
            raise
        finally:
            recorder.end_subsegment()
            if segment is not None:
                recorder.end_segment()
            self._free_container(function)

    @contextmanager
    def subsegment(self, name: str) -> Iterator[_XRaySpan]:
        entity = self._recorder.begin_subsegment(name)
        span = _XRaySpan(entity, None)
        try:
            yield span
        except BaseException as exc:
            if entity is not None:
                span.record_error(exc)
            raise
        finally:
            self._recorder.end_subsegment()

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
