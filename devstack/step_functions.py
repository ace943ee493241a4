"""Step Functions, locally: moto's ASL interpreter runs the executions, and their Lambda tasks run
in the stack's function containers, as Lambda would run them.

What moto 5.2.5 gives (read in moto/stepfunctions/parser/, LocalStack's interpreter): with the
config `stepfunctions.execute_state_machine` on, StartExecution really runs the definition in a
thread (Choice, Pass, Retry with backoff, Catch, Fail, `arn:aws:states:::lambda:invoke`, ...),
keeps the history (GetExecutionHistory) and refuses a second execution of the same name
(ExecutionAlreadyExists). Its service calls go to `http://localhost:$MOTO_PORT`. What it cannot
do without Docker is run a Lambda function: moto's Invoke answers a canned payload. So `install`
routes moto's Invoke of the app's own functions to the stack's containers (anything else keeps
moto's behaviour), and hands each invocation the execution's trace header (StartExecution's
`traceHeader`), which on AWS Step Functions passes on itself: a saga's steps join the trace of
the consumer that started it. The definition passes `$$.Execution.Id` in every task's payload,
which is how an invocation is matched to its execution here (and what the steps log on AWS).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from devstack.invocations import Function

__all__ = ["install"]

log = logging.getLogger(__name__)


def install(invoke: Callable[..., Any], functions: Iterable[Function], *, port: int, account_id: str,
            region: str) -> Callable[[], None]:
    """Turn on moto's interpreter and route its Lambda tasks; returns what undoes it.

    `invoke(function, event, records=0, trace_header=...)` runs one invocation (the emulator's)."""
    from moto.awslambda.models import LambdaBackend
    from moto.core.config import default_user_config

    by_name = {function.function_name: function for function in functions}
    previous_port = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)  # where the interpreter's own clients call
    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    original = LambdaBackend.invoke

    def routed_invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
                      response_headers: Any) -> Any:
        function = by_name.get(_name_of(function_name))
        if function is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            event = body  # the function decides what to make of it, as on Lambda
        outcome = invoke(function, event, records=0, trace_header=_trace_header(event, account_id, region))
        if outcome.ok:
            return json.dumps(outcome.result, default=str).encode()
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(outcome.error_response(function)).encode()

    LambdaBackend.invoke = routed_invoke  # type: ignore[method-assign]

    def uninstall() -> None:
        LambdaBackend.invoke = original  # type: ignore[method-assign]
        default_user_config["stepfunctions"]["execute_state_machine"] = False
        if previous_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous_port

    return uninstall


def _name_of(function_name: str) -> str:
    """A function's name from a name, a partial ARN or an ARN (with or without a qualifier)."""
    if ":function:" in function_name:
        return function_name.split(":function:", 1)[1].split(":", 1)[0]
    return function_name.split(":", 1)[0]


def _trace_header(event: Any, account_id: str, region: str) -> str | None:
    execution_arn = event.get("execution") if isinstance(event, dict) else None
    if not isinstance(execution_arn, str):
        return None
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    try:
        execution = stepfunctions_parser_backends[account_id][region].describe_execution(execution_arn)
    except Exception:  # noqa: BLE001 - no such execution: the step is traced on its own
        log.debug("no execution %s to join the trace of", execution_arn)
        return None
    header = getattr(execution, "trace_header", None)
    return header if isinstance(header, str) and header else None
