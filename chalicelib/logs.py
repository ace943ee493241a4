"""Structured JSON logs: one logger for the whole app, one JSON object per line on stdout.

Why not Powertools' Logger, which the app used until now: importing it runs the whole
`aws_lambda_powertools` package (Metrics, Tracer, the JMESPath utilities, typing_extensions),
about 19 ms of the API's cold start under `python -X importtime` on python3.13, to format a dict.
The standard library does the rest. The lines keep Powertools' shape, so CloudWatch Logs
Insights queries and the local stack's console read them as before: `level`, `location`,
`message`, `timestamp` (`2026-12-02 10:20:19,650+0000`), `service`, the keys appended for the
current request or invocation, the `extra={...}` keys flattened, then `exception`,
`exception_name`, `exception_notes`, `stack_trace` and `xray_trace_id`; keys whose value is None
are left out.

Service name and level come from POWERTOOLS_SERVICE_NAME and LOG_LEVEL (.chalice/config.json),
the variables Powertools read.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from contextvars import ContextVar
from typing import IO, Any

__all__ = ["logger", "append_keys", "clear_keys", "JsonFormatter", "json_logger"]

SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
LOG_LEVEL = "LOG_LEVEL"
_TRACE_ID = "_X_AMZN_TRACE_ID"  # Lambda sets it for each invocation

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Per thread and per task, so concurrent requests of the local server do not mix their keys.
_KEYS: ContextVar[dict[str, Any]] = ContextVar("log_keys", default={})


def append_keys(**keys: Any) -> None:
    """Add `keys` to every line logged from here on in this context (a request, an invocation)."""
    _KEYS.set({**_KEYS.get(), **keys})


def clear_keys() -> None:
    _KEYS.set({})


class JsonFormatter(logging.Formatter):
    """A record as one JSON object, in Powertools' key order."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """What the line holds, before JSON (the local stack's console shortens it)."""
        entry: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.msg if isinstance(record.msg, dict) else record.getMessage(),
            "timestamp": self.formatTime(record),
            "service": self.service,
            **_KEYS.get(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES)
        if record.exc_info and record.exc_info[0] is not None:
            kind, exc, tb = record.exc_info
            entry["exception"] = self.formatException(record.exc_info)
            entry["exception_name"] = kind.__name__
            entry["exception_notes"] = getattr(exc, "__notes__", None)
            entry["stack_trace"] = {
                "type": kind.__name__, "value": str(exc), "module": type(exc).__module__,
                "frames": [{"file": f.filename, "line": f.lineno, "function": f.name, "statement": f.line}
                           for f in traceback.extract_tb(tb)],
            }
        trace = os.environ.get(_TRACE_ID)
        entry["xray_trace_id"] = trace.split(";")[0].removeprefix("Root=") if trace else None
        return {k: v for k, v in entry.items() if v is not None}

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str, separators=(",", ":"), ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(record.created))},{int(record.msecs):03d}+0000"


def json_logger(service: str, level: str | int = logging.INFO, stream: IO[str] | None = None) -> logging.Logger:
    """The logger named `service`, writing JSON lines to `stream` (stdout); made once per name."""
    made = logging.getLogger(service)
    made.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in made.handlers):
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(JsonFormatter(service))
        made.addHandler(handler)
    # Its own handler writes each line; the root logger's (Lambda's runtime installs one) would
    # write it a second time in another format.
    made.propagate = False
    return made


logger = json_logger(os.environ.get(SERVICE_NAME, "service_undefined"), os.environ.get(LOG_LEVEL, "INFO").upper())
