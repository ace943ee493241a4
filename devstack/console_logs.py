"""What `make run` prints: one line per API request or function invocation, warnings and errors.

The app logs JSON (chalicelib/logs.py), as CloudWatch wants it; read by a person, a 330-character
line per request hid what happened. By default the app's request log becomes one short line and
its other INFO lines are left out (each invocation gets its own line from the emulator instead);
DEVSTACK_LOGS=json prints every JSON line, as on Lambda.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by configure_app_logs: the app's logger takes its name from the environment
    from chalicelib.logs import JsonFormatter

__all__ = ["LOGS_VARIABLE", "configure_app_logs", "configure_stack_logs"]

LOGS_VARIABLE = "DEVSTACK_LOGS"  # "json": the app's logs as they are; anything else: short lines


def _json_logs() -> bool:
    return os.environ.get(LOGS_VARIABLE, "").lower() == "json"


class _LineFormatter(logging.Formatter):
    """`12:00:01 message`, with the level named from WARNING up."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f" {record.levelname}" if record.levelno >= logging.WARNING else ""
        line = f"{stamp}{level} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _AppLineFormatter(logging.Formatter):
    """The app's request log as `GET /products 200 12.3 ms`; other lines as message and keys."""

    # Keys every line has, or that only matter in CloudWatch.
    _LEFT_OUT = frozenset({"level", "location", "message", "timestamp", "service", "xray_trace_id",
                           "exception", "exception_name", "exception_notes", "stack_trace", "request_id",
                           "trace_id"})

    def __init__(self, app_format: JsonFormatter) -> None:
        super().__init__()
        self._app_format = app_format

    def format(self, record: logging.LogRecord) -> str:
        entry = self._app_format.fields(record)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f" {record.levelname}" if record.levelno >= logging.WARNING else ""
        if entry.get("message") == "request" and "route" in entry:
            body = f"{entry['route']} {entry.get('status', '?')} {entry.get('duration_ms', '?')} ms"
        else:
            keys = " ".join(f"{k}={v}" for k, v in entry.items() if k not in self._LEFT_OUT and v is not None)
            body = f"{entry.get('message', '')} {keys}".rstrip()
        exception = f"\n{entry['exception']}" if entry.get("exception") else ""
        return f"{stamp}{level} {body}{exception}"


def _request_or_problem(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.getMessage() == "request"


def configure_stack_logs() -> None:
    """The stack process's own logging (call once, before anything logs)."""
    handler = logging.StreamHandler()
    if _json_logs():
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    else:
        handler.setFormatter(_LineFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def configure_app_logs() -> None:
    """Shorten the app's logs (unless DEVSTACK_LOGS=json); call after the app is imported."""
    from chalicelib.logs import SERVICE_NAME, JsonFormatter

    app_logger = logging.getLogger(os.environ.get(SERVICE_NAME, "service_undefined"))
    if _json_logs():
        return
    for handler in app_logger.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(_AppLineFormatter(handler.formatter))
            handler.addFilter(_request_or_problem)
