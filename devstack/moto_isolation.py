"""A fix to the local AWS stand-in: moto's DynamoDB answers one request at a time.

moto serves requests in threads, and its DynamoDB writes are not isolated from each other:
TransactWriteItems checks and applies its items one by one (another request can write in
between), and on cancellation restores what it saved when it started, erasing whatever other
requests wrote meanwhile. Measured with moto 5.2.5, 8 threads each recording 20 orders and
confirming them with one transaction against a stock of 20: plain moto left some confirmed
orders back at `queued` or failed requests with "dictionary changed size during iteration";
with devstack.moto_speedups' item snapshots it confirmed 21 to 23 orders (an oversell that
DynamoDB cannot produce). Real DynamoDB makes every request atomic and a transaction isolated
from other writes; serialising moto's DynamoDB requests gives the same guarantees locally.
moto's request handling is Python under the GIL, so little parallelism is lost.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

__all__ = ["install"]

_LOCK = threading.RLock()


def install() -> None:
    """Serialise moto's DynamoDB requests in this process (idempotent; before serving)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "storefront_serialised", False):
        return

    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        with _LOCK:
            return original(self)

    call_action.storefront_serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
