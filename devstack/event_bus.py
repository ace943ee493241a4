"""EventBridge, locally: moto's bus matches events to rules and delivers them to SQS targets; this
module adds what moto drops on the way.

What moto 5.2.5 does (moto/events/models.py): PutEvents matches each entry against every rule of
its bus with its own EventPattern (exact values, a value found in an array field, prefix, suffix,
equals-ignore-case, numeric, anything-but, exists, cidr, wildcard, $or) and sends the event to
each SQS target as the message body, and to an archive. What it drops: the entry's
`TraceHeader`, which EventBridge hands an SQS target as the message's `AWSTraceHeader` system
attribute (so a consumer's trace links to the publisher's), and the event's `account`, which a
target gets on AWS. `pass_trace_headers` puts both back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["pass_trace_headers"]

_current = threading.local()  # the trace header of the PutEvents entry being delivered, per thread


def pass_trace_headers() -> Callable[[], None]:
    """Patch moto so an entry's TraceHeader reaches its SQS targets as AWSTraceHeader; returns the undo."""
    from moto.events.models import EventsBackend, Rule
    from moto.sqs.models import SQSBackend

    original_put_events = EventsBackend.put_events
    original_send_to_sqs = Rule._send_to_sqs_queue
    original_send_message = SQSBackend.send_message

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(events) > 10:
            return original_put_events(self, events)  # moto refuses the request as AWS does
        entries: list[dict[str, Any]] = []
        outer = getattr(_current, "header", None)
        for event in events:
            # One entry at a time, so each target knows whose header it carries. A bus-to-bus
            # target calls put_events again, without a header of its own: it keeps the outer one.
            _current.header = event.get("TraceHeader") or outer
            try:
                entries.extend(original_put_events(self, [event]))
            finally:
                _current.header = outer
        return entries

    def send_to_sqs_queue(self: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
        if {"id", "detail-type", "source", "detail"} <= event.keys():  # the event itself, not a transformed input
            event.setdefault("account", self.account_id)
        original_send_to_sqs(self, resource_id, event, group_id)

    def send_message(self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        header = getattr(_current, "header", None)
        if header and not kwargs.get("system_attributes") and len(args) < 5:
            kwargs["system_attributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": header}}
        return original_send_message(self, queue_name, message_body, *args, **kwargs)

    EventsBackend.put_events = put_events  # type: ignore[method-assign]
    Rule._send_to_sqs_queue = send_to_sqs_queue  # type: ignore[method-assign]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]

    def undo() -> None:
        EventsBackend.put_events = original_put_events  # type: ignore[method-assign]
        Rule._send_to_sqs_queue = original_send_to_sqs  # type: ignore[method-assign]
        SQSBackend.send_message = original_send_message  # type: ignore[method-assign]

    return undo
