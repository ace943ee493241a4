"""What `make run` prints: one line per API request or function invocation, warnings and errors.

The app logs JSON (Powertools), as CloudWatch wants it; read by a person, a 330-character line
per request hid what happened. By default the app's request log becomes one short line and its
other INFO lines are left out (each invocation gets its own line from the emulator instead);
DEVSTACK_LOGS=json prints every JSON line, as on Lambda.
"""

from __future__ import annotations

import logging
import os
import time

__all__ = ["LOGS_VARIABLE", "configure_app_logs", "configure_stack_logs"]

LOGS_VARIABLE = "DEVSTACK_LOGS"  # "json": the app's logs as they are; anything else: short lines


def _json_logs() -> bool:
    return os.environ.get(LOGS_VARIABLE, "").lower() == "json"


class _LineFormatter(logging.Formatter):
    """`12:00:01 message`, with the level named from WARNING up."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f" {record.levelname}" if record.levelno >= logging.WARNING else ""
        line = f"{stamp}{level} {self._body(record)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def _body(self, record: logging.LogRecord) -> str:
        return record.getMessage()


class _AppLineFormatter(_LineFormatter):
    """The app's request log as `GET /products 200 12.3 ms`; other lines with their extra keys."""

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def _body(self, record: logging.LogRecord) -> str:
        values = {k: v for k, v in record.__dict__.items() if k not in self._STANDARD}
        if record.getMessage() == "request" and "route" in values:
            return f"{values['route']} {values.get('status', '?')} {values.get('duration_ms', '?')} ms"
        extras = " ".join(f"{k}={v}" for k, v in values.items() if v is not None)
        return f"{record.getMessage()} {extras}".rstrip()


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
    if _json_logs():
        return
    app_logger = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
    for handler in app_logger.handlers:
        handler.setFormatter(_AppLineFormatter())
        handler.addFilter(_request_or_problem)
