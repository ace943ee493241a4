"""A stand-in for the X-Ray daemon: UDP segments in, PutTraceSegments batches out.

The app keeps aws_xray_sdk's default UDP emitter, addressed by AWS_XRAY_DAEMON_ADDRESS exactly
as in Lambda; this daemon receives those datagrams and forwards the documents to the X-Ray API
of the local stand-in from background threads, so emitting never waits on an HTTP call.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_DOCUMENT_BYTES",
    "DaemonStats",
    "MalformedDatagram",
    "XRayDaemon",
    "parse_datagram",
]

log = logging.getLogger(__name__)

# The real daemon's batch size; a segment document may be at most 64 KB.
MAX_BATCH_SIZE = 50
MAX_DOCUMENT_BYTES = 64 * 1024
# Above any datagram size, so nothing the SDK sends is truncated.
_DATAGRAM_BYTES = 65535
# The emitter is fire-and-forget: a burst that overflows the kernel's buffer is lost silently.
# The kernel caps this at net.core.rmem_max.
_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

_TRACE_ID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
_ENTITY_ID = re.compile(r"^[0-9a-f]{16}$")


class MalformedDatagram(ValueError):
    """A datagram that is not a header line followed by a valid segment document."""


def parse_datagram(data: bytes) -> str:
    """The segment document carried by one datagram of the X-Ray daemon protocol.

    ``{"format": "json", "version": 1}\\n<segment or subsegment JSON>``. Checks the fields X-Ray
    requires, so one bad document cannot fail the batch it would travel in.
    Raises MalformedDatagram.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedDatagram("not UTF-8") from None
    header_line, newline, body = text.partition("\n")
    if not newline:
        raise MalformedDatagram("no header line")
    try:
        header = json.loads(header_line)
    except ValueError:
        raise MalformedDatagram("header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != "json" or header.get("version") != 1:
        raise MalformedDatagram(f"unsupported header {header_line[:100]!r}")
    if len(body.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise MalformedDatagram("document larger than 64 KB")
    try:
        document = json.loads(body)
    except ValueError:
        raise MalformedDatagram("document is not JSON") from None
    _check_document(document)
    return body


def _check_document(document: Any) -> None:
    if not isinstance(document, dict):
        raise MalformedDatagram("document is not a JSON object")
    if not isinstance(document.get("name"), str) or not document["name"]:
        raise MalformedDatagram("document has no name")
    if not isinstance(document.get("id"), str) or not _ENTITY_ID.match(document["id"]):
        raise MalformedDatagram("document id is not 16 hex digits")
    if not isinstance(document.get("trace_id"), str) or not _TRACE_ID.match(document["trace_id"]):
        raise MalformedDatagram("document has no valid trace_id")
    if not _is_number(document.get("start_time")):
        raise MalformedDatagram("document has no numeric start_time")
    if "end_time" in document:
        if not _is_number(document["end_time"]):
            raise MalformedDatagram("document end_time is not numeric")
    elif document.get("in_progress") is not True:
        raise MalformedDatagram("document has neither end_time nor in_progress")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class DaemonStats:
    """Datagrams received, split by fate; ``pending`` are buffered and not yet sent."""

    received: int
    malformed: int
    forwarded: int
    dropped: int
    pending: int


class XRayDaemon:
    """Receives X-Ray SDK datagrams on UDP and forwards them with PutTraceSegments.

    ``xray_client`` is a boto3 X-Ray client (pointed at the local stand-in). Port 0 picks a
    free port; ``address`` is what AWS_XRAY_DAEMON_ADDRESS should say.
    """

    def __init__(
        self,
        xray_client: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        flush_interval: float = 0.2,
        max_buffered: int = 10_000,
    ) -> None:
        self._xray = xray_client
        self._flush_interval = flush_interval
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
        self._socket.bind((host, port))
        # Lets the receiver notice stop() without a datagram arriving.
        self._socket.settimeout(0.05)
        self._buffer: collections.deque[str] = collections.deque()
        self._max_buffered = max_buffered
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._warned: set[str] = set()
        self._received = self._malformed = self._forwarded = self._dropped = 0

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"{host}:{port}"

    def stats(self) -> DaemonStats:
        with self._cond:
            return DaemonStats(self._received, self._malformed, self._forwarded, self._dropped, len(self._buffer))

    def start(self) -> None:
        """Start receiving and forwarding in background threads."""
        if self._threads:
            raise RuntimeError("XRayDaemon already started")
        self._threads = [
            threading.Thread(target=self._receive_loop, name="xray-daemon-receive", daemon=True),
            threading.Thread(target=self._send_loop, name="xray-daemon-send", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Read what is already queued on the socket, forward everything held, close the socket."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self.flush()
        self._socket.close()

    def flush(self) -> None:
        """Forward every buffered document now, in batches."""
        with self._send_lock:
            while True:
                with self._cond:
                    batch = [self._buffer.popleft() for _ in range(min(MAX_BATCH_SIZE, len(self._buffer)))]
                if not batch:
                    return
                self._put(batch)

    def __enter__(self) -> XRayDaemon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._socket.recv(_DATAGRAM_BYTES)
            except TimeoutError:
                continue
            except OSError:
                self._warn_once("socket", "X-Ray daemon socket failed; no more segments will be received", True)
                return
            self._accept(data)
        self._drain_socket()

    def _drain_socket(self) -> None:
        self._socket.setblocking(False)
        while True:
            try:
                data = self._socket.recv(_DATAGRAM_BYTES)
            except OSError:
                return
            self._accept(data)

    def _accept(self, data: bytes) -> None:
        try:
            document = parse_datagram(data)
        except MalformedDatagram as err:
            with self._cond:
                self._received += 1
                self._malformed += 1
            self._warn_once("malformed", f"X-Ray daemon ignoring malformed datagram(s): {err}")
            return
        with self._cond:
            self._received += 1
            if len(self._buffer) >= self._max_buffered:
                self._dropped += 1
                overflow = True
            else:
                self._buffer.append(document)
                overflow = False
                if len(self._buffer) >= MAX_BATCH_SIZE:
                    self._cond.notify_all()
        if overflow:
            self._warn_once("overflow", f"X-Ray daemon buffer full ({self._max_buffered}); dropping segments")

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping.is_set() or len(self._buffer) >= MAX_BATCH_SIZE,
                    timeout=self._flush_interval,
                )
            if not self._stopping.is_set():
                self.flush()

    def _put(self, batch: list[str]) -> None:
        try:
            response = self._xray.put_trace_segments(TraceSegmentDocuments=batch)
        except Exception as err:  # noqa: BLE001 - the sender thread must outlive any failure
            with self._cond:
                self._dropped += len(batch)
            self._warn_once("put", f"X-Ray daemon could not forward {len(batch)} segment(s): {err}")
            return
        rejected = response.get("UnprocessedTraceSegments", [])
        with self._cond:
            self._forwarded += len(batch) - len(rejected)
            self._dropped += len(rejected)
        if rejected:
            self._warn_once("rejected", f"X-Ray rejected segment(s): {rejected[:3]}")

    def _warn_once(self, kind: str, message: str, exc_info: bool = False) -> None:
        # A misbehaving sender would otherwise flood the stack's log with one line per datagram.
        with self._cond:
            if kind in self._warned:
                return
            self._warned.add(kind)
        log.warning(message + " (further ones are counted, not logged)", exc_info=exc_info)
