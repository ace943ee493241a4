"""The stack's EventBridge bus: domain events put in order, at most 10 to a PutEvents call.

PutEvents answers per entry: some entries of a call may fail (throttling, an internal error) while
the others are put. The failed ones are retried a few times here, briefly; what still fails ends
the publishing at the first failed event, which is what the stream consumer reports, so its event
source mapping retries from there. Each entry carries the trace header of the write it comes from,
so its targets join that write's trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import is_transient_aws_error
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.events import DomainEvent
from chalicelib.logs import logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

__all__ = ["EventBridgeBus"]

_ENTRIES_PER_CALL = 10  # PutEvents' limit
_RETRIES = 3
_BACKOFF_SECONDS = 0.1


class EventBridgeBus:
    def __init__(self, client: Callable[[], EventBridgeClient], bus_name: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._events = client
        self._bus = bus_name
        self._sleep = sleep

    def publish(self, events: Sequence[DomainEvent]) -> int:
        published = 0
        for start in range(0, len(events), _ENTRIES_PER_CALL):
            chunk = events[start:start + _ENTRIES_PER_CALL]
            put = self._put_in_order(chunk)
            published += put
            if put < len(chunk):
                break
        return published

    def _put_in_order(self, chunk: Sequence[DomainEvent]) -> int:
        """How many events of `chunk`, from the first, are on the bus after the retries."""
        pending = list(range(len(chunk)))  # indexes not yet put
        for attempt in range(_RETRIES + 1):
            entries = [self._entry(chunk[i]) for i in pending]
            try:
                results = self._events().put_events(Entries=entries)["Entries"]
            except ClientError as exc:
                if not is_transient_aws_error(exc):
                    raise
                results = [{"ErrorCode": "Unavailable", "ErrorMessage": str(exc)}] * len(pending)
            except BotoCoreError as exc:
                raise DependencyUnavailable(f"the event bus could not be reached: {exc}") from exc
            failed = [i for i, result in zip(pending, results) if result.get("ErrorCode")]
            if not failed:
                return len(chunk)
            errors = sorted({str(r.get("ErrorCode")) for r in results if r.get("ErrorCode")})
            logger.warning("the event bus refused events", extra={"count": len(failed), "errors": errors,
                                                                   "attempt": attempt + 1})
            pending = failed
            if attempt < _RETRIES:
                self._sleep(_BACKOFF_SECONDS * 2 ** attempt)
        return min(pending)

    def _entry(self, event: DomainEvent) -> PutEventsRequestEntryTypeDef:
        entry: dict[str, Any] = {
            "EventBusName": self._bus, "Source": str(event.source), "DetailType": str(event.detail_type),
            "Detail": json.dumps(event.detail, separators=(",", ":"), default=str), "Time": event.at,
        }
        if event.trace_header:
            entry["TraceHeader"] = event.trace_header
        return entry  # type: ignore[return-value]
