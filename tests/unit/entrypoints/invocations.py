"""Calling the app's functions as Lambda calls them, over services installed as the container's.

`installed(...)` installs `bootstrap` over `fake_clients(**fakes)` for the test's duration and
keeps what the app logs meanwhile (the app's logger writes to stdout only; it does not propagate).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalice.local import LambdaContext

from app import app as chalice_app
from chalicelib import bootstrap
from chalicelib.logs import logger
from tests.unit.fakes import InMemoryTracer, fake_clients, fake_settings

__all__ = ["invoke", "installed", "sqs_event", "errors"]


def invoke(function: str, event: Any) -> Any:
    """`function` called as Lambda calls it: through the app, with its middleware."""
    return chalice_app.handler_map[function](event, LambdaContext(function, 512))


class _Kept(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def installed(tracer: InMemoryTracer | None = None, **fakes: Any) -> Iterator[list[logging.LogRecord]]:
    """The container's services over in-memory fakes (`fakes` by name, as `fake_clients` takes
    them); yields the log records written meanwhile."""
    logged: list[logging.LogRecord] = []
    bootstrap.install(bootstrap.bootstrap(fake_settings(orders_table="orders"), tracer=tracer or InMemoryTracer(),
                                          clients=fake_clients(**fakes)))
    kept = _Kept(logged)
    logger.addHandler(kept)
    try:
        yield logged
    finally:
        logger.removeHandler(kept)
        bootstrap.install(None)


def errors(logged: list[logging.LogRecord]) -> list[str]:
    """The messages logged at ERROR or above, in order."""
    return [r.getMessage() for r in logged if r.levelno >= logging.ERROR]


def sqs_event(*bodies: str, queue: str = "queue", receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch as Lambda hands it over: message ids m-1, m-2, ..."""
    return {"Records": [{
        "messageId": f"m-{number}", "receiptHandle": f"r-{number}", "body": body, "md5OfBody": "",
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1795000000000"},
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
    } for number, body in enumerate(bodies, start=1)]}
