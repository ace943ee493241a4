"""One invocation of a function, as Lambda runs it: in a container process, or in a thread.

Whatever the handler raises, whatever overruns the timeout, and a result Lambda could not
serialise all become a failed `Outcome`; nothing escapes to the caller.
"""

from __future__ import annotations

import contextlib
import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from devstack.containers import ContainerTimedOut, ProcessContainers
from devstack.lambda_context import FunctionSettings, LambdaContext
from devstack.lambda_tracing import FunctionSegment, FunctionTracing

__all__ = ["Function", "FunctionTimedOut", "Outcome", "build_middleware_chain", "run"]

_THREAD_PREFIX = "devstack-events"


class FunctionTimedOut(Exception):
    """An invocation ran past the function's timeout."""


@dataclass(frozen=True)
class Function:
    """A function of the app: its handler's name, its Lambda name, the callable and its settings."""

    name: str
    function_name: str
    handler: Callable[[dict[str, Any], Any], Any]
    settings: FunctionSettings

    def timeout_message(self) -> str:
        return f"Task timed out after {self.settings.timeout_seconds:.2f} seconds"


@dataclass
class Outcome:
    """How one invocation ended."""

    request_id: str
    result: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out

    def error_response(self, function: Function) -> dict[str, Any]:
        """Lambda's response payload for a failed invocation."""
        if self.timed_out or self.error is None:
            return {"errorMessage": function.timeout_message(), "errorType": "Sandbox.Timedout"}
        return {
            "errorMessage": str(self.error),
            # What the handler raised, also when it raised in a container process.
            "errorType": getattr(self.error, "error_type", None) or type(self.error).__name__,
            "stackTrace": traceback.format_tb(self.error.__traceback__),
        }


def run(function: Function, event: dict[str, Any], context: LambdaContext,
        containers: ProcessContainers | None, tracing: FunctionTracing | None = None, *,
        trace_header: str | None = None) -> Outcome:
    """Call the handler as Lambda would: in a container process, or (None) in a thread of this one.

    With `tracing`, the invocation gets the function segment Lambda would open for it, in the
    trace of `trace_header` when its caller passed one (a synchronous invoke: Step Functions).
    """
    outcome = Outcome(request_id=context.aws_request_id)
    segment = None  # in a thread, FunctionTracing.in_thread opens and closes it
    if containers is not None:
        segment = (tracing.open(function.function_name, trace_header=trace_header, event=event)
                   if tracing is not None else None)
        _run_in_container(function, event, context, outcome, containers, segment)
    else:
        _run_in_thread(function, event, context, outcome, tracing, trace_header)
    if outcome.ok:
        try:
            json.dumps(outcome.result, default=_json_default)
        except (TypeError, ValueError) as error:
            # Lambda fails an invocation whose result it cannot serialise (Runtime.MarshalError).
            outcome.error = error
    if tracing is not None and segment is not None:
        segment.failed = not outcome.ok
        tracing.close(segment)
    return outcome


def _run_in_container(function: Function, event: dict[str, Any], context: LambdaContext, outcome: Outcome,
                      containers: ProcessContainers, segment: FunctionSegment | None) -> None:
    def initialized(start: float, end: float) -> None:
        if segment is not None:
            segment.initialization = (start, end)

    try:
        outcome.result = containers.invoke(function.name, event, context,
                                           timeout_s=function.settings.timeout_seconds,
                                           trace_header=segment.header if segment is not None else None,
                                           on_init=initialized)
    except ContainerTimedOut:
        outcome.timed_out = True
    except BaseException as error:  # noqa: BLE001 - Lambda reports whatever escapes
        outcome.error = error


def _run_in_thread(function: Function, event: dict[str, Any], context: LambdaContext,
                   outcome: Outcome, tracing: FunctionTracing | None, trace_header: str | None = None) -> None:
    """A timeout ends the invocation, not the thread (a thread cannot be killed)."""
    def call() -> None:
        traced = (tracing.in_thread(function.function_name, trace_header=trace_header, event=event)
                  if tracing is not None
                  else contextlib.nullcontext(None))
        with traced as segment:
            try:
                outcome.result = function.handler(event, context)
            except BaseException as error:  # noqa: BLE001 - Lambda reports whatever escapes
                outcome.error = error
                if segment is not None:
                    segment.failed = True

    handler_thread = threading.Thread(
        target=call, name=f"{_THREAD_PREFIX}:{function.function_name}:handler", daemon=True
    )
    handler_thread.start()
    handler_thread.join(function.settings.timeout_seconds)
    if handler_thread.is_alive():
        outcome.timed_out = True


def build_middleware_chain(handler: Any) -> None:
    """What Chalice's EventSourceHandler does on its first call, done once before any thread calls.

    Chalice builds the chain from a generator on the first call; two threads making that call at
    once get "generator already executing", or a chain without the middleware. Lambda never runs
    one container twice at once, so Chalice has no lock; the emulator does run functions in
    parallel threads of one process.
    """
    if getattr(handler, "handler", False) is None and hasattr(handler, "_build_middleware_handlers"):
        handler.handler = handler._build_middleware_handlers(
            handler.middleware_handlers, original_handler=handler.func)


def _json_default(value: Any) -> Any:
    # The Python runtime serialises Decimal (DynamoDB's number type); nothing else extra.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
