"""Lambda containers as processes, as Lambda runs them.

In Lambda each container is a process of its own: it imports the function's code once (the cold
start), then runs one invocation at a time, for as long as it is kept. Run as threads of the local
stack's one Python process instead, every function's own CPU work (parsing, validation, building
requests, tracing) took turns with moto's under one interpreter lock: a bulk import spent about half
its CPU in the workers' code, serialised with the stand-in's. Here a container is a spawned process
that imports the app, with the stack's environment, and is reused while idle; the emulator still
decides when and how many run (batching, maximum concurrency, retries), and each container makes
its own AWS clients, once, as on Lambda. A container that overruns the function's timeout is
killed, as Lambda ends the sandbox; one that dies is replaced by the next invocation.

As on Lambda, LAMBDA_TASK_ROOT is set before the app is imported and each invocation's trace
header is in _X_AMZN_TRACE_ID (devstack/lambda_tracing.py); a new container reports how long
importing the app took, Lambda's Initialization. Ctrl-C in the terminal reaches every process of
its group: a container ignores it and ends when the stack tells it to (or is killed).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from devstack.console_logs import configure_app_logs
from devstack.lambda_context import LambdaContext

__all__ = ["ProcessContainers", "ContainerError", "ContainerTimedOut"]

_SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: forking threads would copy held locks


class ContainerError(Exception):
    """What a handler raised in its container (its type, message and the container's traceback).

    `error_type` is the class name of what the handler raised: Lambda reports it as the
    invocation's `errorType`, which Step Functions' Retry and Catch match by name."""

    def __init__(self, message: str, error_type: str = "ContainerError") -> None:
        super().__init__(message)
        self.error_type = error_type


class ContainerTimedOut(Exception):
    """The invocation overran the function's timeout; its container was killed."""


def _serve(conn: Any, project_dir: str, module: str, handler_name: str) -> None:
    """A container's life: import the app once (reported as ("init", start, end)), then run one
    invocation per message."""
    # The stack stops its containers itself; a Ctrl-C meant for it must not kill them mid-reply.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["LAMBDA_TASK_ROOT"] = project_dir  # before any import: the X-Ray SDK reads it once
    if project_dir not in sys.path:
        sys.path.insert(0, project_dir)
    init_start = time.time()
    handler = importlib.import_module(module).app.handler_map[handler_name]
    configure_app_logs()
    conn.send(("init", init_start, time.time()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        event, fields, remaining_ms, trace_header = message
        if trace_header:
            os.environ["_X_AMZN_TRACE_ID"] = trace_header
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            result = handler(event, LambdaContext.resumed(fields, remaining_ms))
        except BaseException as exc:  # noqa: BLE001 - Lambda reports whatever escapes
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(), type(exc).__name__))
            continue
        try:
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - an unpicklable result cannot leave, as on Lambda
            conn.send(("error", f"the result could not be returned: {exc!r}", "", "Runtime.MarshalError"))


class _Container:
    def __init__(self, project_dir: str, module: str, handler_name: str) -> None:
        self.conn, child = _SPAWN.Pipe()
        self.process = _SPAWN.Process(target=_serve, args=(child, project_dir, module, handler_name),
                                      name=f"lambda:{handler_name}", daemon=True)
        # A blocked signal stays blocked in the new process, so a Ctrl-C that arrives before
        # _serve ignores SIGINT (while Python starts and unpickles) cannot interrupt it either.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class ProcessContainers:
    """Containers per handler of the app in `module` (imported from `project_dir`)."""

    def __init__(self, project_dir: str, module: str = "app") -> None:
        self._project_dir = project_dir
        self._module = module
        self._idle: dict[str, list[_Container]] = {}
        self._all: set[_Container] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def invoke(self, handler_name: str, event: dict[str, Any], context: LambdaContext, *,
               timeout_s: float, trace_header: str | None = None,
               on_init: Callable[[float, float], None] | None = None) -> Any:
        """The handler's result; raises ContainerError, or ContainerTimedOut after `timeout_s`.

        `trace_header` becomes the container's _X_AMZN_TRACE_ID. When the invocation starts a
        container, `on_init(start, end)` is told when importing the app began and ended.
        """
        container = self._take(handler_name)
        deadline = time.monotonic() + timeout_s
        try:
            container.conn.send((event, context.fields(), context.get_remaining_time_in_millis(), trace_header))
            while True:
                if not container.conn.poll(max(0.0, deadline - time.monotonic())):
                    self._discard(container)
                    raise ContainerTimedOut(f"{handler_name} ran over {timeout_s:g} s; its container was killed")
                kind, *payload = container.conn.recv()
                if kind != "init":
                    break
                if on_init is not None:
                    on_init(*payload)
        except (EOFError, OSError) as exc:
            self._discard(container)
            raise ContainerError(f"the container of {handler_name} exited during the invocation ({exc!r})") from None
        self._release(handler_name, container)
        if kind == "error":
            message, remote_traceback, error_type = payload
            raise ContainerError(f"{message}\n{remote_traceback}".rstrip(), error_type)
        return payload[0]

    def stop(self, timeout: float = 5) -> None:
        """End every container: idle ones at once, busy ones after `timeout` seconds."""
        with self._lock:
            self._stopped = True
            containers = list(self._all)
        for container in containers:
            try:
                container.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for container in containers:
            container.process.join(max(0.0, deadline - time.monotonic()))
            if container.process.is_alive():
                container.process.kill()
                container.process.join(5)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._all)

    def _take(self, handler_name: str) -> _Container:
        with self._lock:
            if self._stopped:
                raise ContainerError("the local stack is stopping")
            idle = self._idle.setdefault(handler_name, [])
            while idle:
                container = idle.pop()
                if container.process.is_alive():
                    return container
                self._all.discard(container)
        container = _Container(self._project_dir, self._module, handler_name)  # a cold start
        with self._lock:
            self._all.add(container)
        return container

    def _release(self, handler_name: str, container: _Container) -> None:
        with self._lock:
            if not self._stopped:
                self._idle.setdefault(handler_name, []).append(container)
                return
        try:
            container.conn.send(None)
        except OSError:
            pass

    def _discard(self, container: _Container) -> None:
        container.kill()
        with self._lock:
            self._all.discard(container)
