"""What Lambda's service does for an actively traced function, done by the local stack.

For every invocation Lambda opens an `AWS::Lambda::Function` segment: it continues the caller's
trace (an HTTP request's X-Amzn-Trace-Id) or, for an SQS batch, starts a new trace linked to the
traces of the messages' senders; a container's first invocation gets an `Initialization`
subsegment, the handler's run an `Invocation` one. Lambda hands the segment to the function in
`_X_AMZN_TRACE_ID` (Root, Parent = the segment's id, Sampled); the X-Ray SDK, finding
LAMBDA_TASK_ROOT, continues it and streams the code's own subsegments to the daemon. Lambda
sends the function segment itself. Here:

- a container process (devstack/containers.py) gets the same environment variables, so the
  SDK does exactly what it does on Lambda;
- a thread of the stack's process (the API, and DEVSTACK_CONTAINERS=thread) cannot be handed an
  environment variable of its own, so the SDK gets Lambda's context object (`use_lambda_context`)
  and the segment is set for that thread (`FunctionTracing.in_thread`).

Senders through SNS: AWS passes the publisher's trace header on to SQS subscribers (with SNS
active tracing); moto does not, so a message without the AWSTraceHeader system attribute is
linked through a message attribute of that name, which the app's SNS publishers also set.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.lambda_launcher import LambdaContext
from aws_xray_sdk.core.models.facade_segment import FacadeSegment

__all__ = ["FunctionSegment", "FunctionTracing", "sender_trace_headers", "use_lambda_context"]

log = logging.getLogger(__name__)

_HEADER_PART = re.compile(r"(Root|Parent|Sampled)=([^;]*)")
_DATAGRAM_HEADER = b'{"format": "json", "version": 1}\n'
_MAX_LINKS = 20  # X-Ray links a segment to at most 20 other traces
_ORIGIN = "AWS::Lambda::Function"


def _parse(header: str | None) -> dict[str, str]:
    return dict(_HEADER_PART.findall(header or ""))


def _trace_id() -> str:
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _entity_id() -> str:
    return secrets.token_hex(8)


def sender_trace_headers(event: dict[str, Any]) -> list[str]:
    """The trace headers of the senders of an SQS event's records (those that have one)."""
    headers = []
    for record in event.get("Records", []):
        if record.get("eventSource") != "aws:sqs":
            continue
        header = (record.get("attributes") or {}).get("AWSTraceHeader")
        if not header:
            header = ((record.get("messageAttributes") or {}).get("AWSTraceHeader") or {}).get("stringValue")
        if header:
            headers.append(header)
    return headers


class FunctionSegment:
    """One invocation's `AWS::Lambda::Function` segment, open from creation until `document`."""

    def __init__(self, function_name: str, *, trace_header: str | None = None,
                 links: Sequence[str] = ()) -> None:
        caller = _parse(trace_header)
        self.function_name = function_name
        self.trace_id = caller.get("Root") or _trace_id()
        self.parent_id = caller.get("Parent") or None
        self.sampled = caller.get("Sampled") != "0"
        self.id = _entity_id()
        self.start = time.time()
        self.initialization: tuple[float, float] | None = None  # a cold start's (start, end)
        self.failed = False  # the invocation failed: the segment is marked a fault, as Lambda does
        self.links = _links(links)

    @property
    def header(self) -> str:
        """`_X_AMZN_TRACE_ID` for the function: this segment is the parent of its subsegments."""
        return f"Root={self.trace_id};Parent={self.id};Sampled={1 if self.sampled else 0}"

    def document(self, end: float | None = None) -> dict[str, Any]:
        """The segment document, ended at `end` (default: now)."""
        end = time.time() if end is None else end
        invocation_start = self.start
        subsegments = []
        if self.initialization is not None:
            init_start, init_end = self.initialization
            subsegments.append({"id": _entity_id(), "name": "Initialization",
                                "start_time": init_start, "end_time": init_end})
            invocation_start = max(self.start, init_end)
        subsegments.append({"id": _entity_id(), "name": "Invocation", "start_time": invocation_start,
                            "end_time": end})
        document: dict[str, Any] = {
            "name": self.function_name, "id": self.id, "trace_id": self.trace_id, "start_time": self.start,
            "end_time": end, "origin": _ORIGIN, "subsegments": subsegments}
        if self.parent_id:
            document["parent_id"] = self.parent_id
        if self.links:
            document["links"] = self.links
        if self.failed:
            document["fault"] = True
        return document


def _links(headers: Sequence[str]) -> list[dict[str, str]]:
    """X-Ray span links to the traces named by `headers` (deduplicated, at most 20)."""
    found: dict[str, dict[str, str]] = {}
    for header in headers:
        parts = _parse(header)
        root = parts.get("Root")
        if root and root not in found and len(found) < _MAX_LINKS:
            found[root] = {"trace_id": root, **({"id": parts["Parent"]} if parts.get("Parent") else {})}
    return list(found.values())


def use_lambda_context(daemon_address: str) -> None:
    """Give this process's X-Ray recorder Lambda's context object, as the SDK does on Lambda.

    For invocations in threads of this process (`FunctionTracing.in_thread`). Call it before the
    app's first invocation; _X_AMZN_TRACE_ID must not be set in this process. The daemon's
    address is given because the SDK reads AWS_XRAY_DAEMON_ADDRESS only when first imported.
    """
    # On Lambda the recorder streams every finished subsegment at once (threshold 0).
    xray_recorder.configure(context=LambdaContext(), streaming_threshold=0, daemon_address=daemon_address)


class FunctionTracing:
    """Opens and sends function segments; `daemon_address` is AWS_XRAY_DAEMON_ADDRESS's host:port."""

    def __init__(self, daemon_address: str) -> None:
        host, _, port = daemon_address.rpartition(":")
        self._address = (host, int(port))
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._lock = threading.Lock()
        self._idle: dict[str, int] = {}

    def open(self, function_name: str, *, trace_header: str | None = None,
             event: dict[str, Any] | None = None) -> FunctionSegment:
        """The segment of an invocation of `function_name` with `event` (an SQS batch is linked)."""
        return FunctionSegment(function_name, trace_header=trace_header,
                               links=sender_trace_headers(event) if event else ())

    def close(self, segment: FunctionSegment) -> None:
        """End the segment and send it to the daemon, unless the caller's trace is not sampled."""
        if not segment.sampled:
            return
        data = _DATAGRAM_HEADER + json.dumps(segment.document()).encode()
        try:
            self._socket.sendto(data, self._address)
        except OSError:
            log.warning("could not send %s's segment to the X-Ray daemon", segment.function_name, exc_info=True)

    @contextmanager
    def in_thread(self, function_name: str, *, trace_header: str | None = None,
                  event: dict[str, Any] | None = None) -> Iterator[FunctionSegment]:
        """An invocation in this thread, inside its function segment (see `use_lambda_context`).

        Lambda starts a container for an invocation that finds none idle: that is a cold start.
        In-process invocations share the app imported once, so its Initialization takes no time.
        """
        segment = self.open(function_name, trace_header=trace_header, event=event)
        if self._take_container(function_name):
            segment.initialization = (segment.start, segment.start)
        xray_recorder.context.set_trace_entity(FacadeSegment(
            name="facade", traceid=segment.trace_id, entityid=segment.id, sampled=segment.sampled))
        try:
            yield segment
        except BaseException:
            segment.failed = True
            raise
        finally:
            xray_recorder.context.clear_trace_entities()
            self._free_container(function_name)
            self.close(segment)

    def _take_container(self, function_name: str) -> bool:
        """Take an idle container of the function; True when none was idle (a cold start)."""
        with self._lock:
            idle = self._idle.get(function_name, 0)
            self._idle[function_name] = max(idle - 1, 0)
        return idle == 0

    def _free_container(self, function_name: str) -> None:
        with self._lock:
            self._idle[function_name] = self._idle.get(function_name, 0) + 1
