"""An in-process moto server on a free port, for any test folder's conftest."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

from moto.server import ThreadedMotoServer

from devstack import moto_isolation

__all__ = ["free_port", "running_moto_server"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (ThreadedMotoServer does not accept port 0 everywhere)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """Run a ThreadedMotoServer for the duration of the block and yield its endpoint URL.

    Never combine with moto's mock_aws(): entering it wipes this server's state.
    """
    # Werkzeug logs one line per request, which buries a failing test's own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_isolation.install()  # as the local stack does: DynamoDB's atomicity under concurrency
    port = free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
