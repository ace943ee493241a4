"""Step Functions, locally: moto's ASL interpreter runs the executions, and their Lambda tasks run
in the stack's function containers, as Lambda would run them.

What moto 5.2.5 gives (read in moto/stepfunctions/parser/, LocalStack's interpreter): with the
config `stepfunctions.execute_state_machine` on, StartExecution really runs the definition in a
thread (Choice, Pass, Retry with backoff, Catch, Fail, `arn:aws:states:::lambda:invoke`, ...),
keeps the history (GetExecutionHistory) and refuses a second execution of the same name
(ExecutionAlreadyExists); its StartExecution handler drops `traceHeader`, which `run_executions`
passes on. Its service calls go to `http://localhost:$MOTO_PORT`. What it cannot
do without Docker is run a Lambda function: moto's Invoke answers a canned payload. So `route_lambda_tasks`
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
import threading
from collections.abc import Callable, Iterable
from typing import Any

from devstack.invocations import Function

__all__ = ["run_executions", "route_lambda_tasks"]

log = logging.getLogger(__name__)


def run_executions(port: int) -> Callable[[], None]:
    """Turn on moto's interpreter; returns what undoes it.

    Before any state machine is created: with the config on, moto keeps state machines in the
    interpreter's backend, and one created before would not be found by StartExecution."""
    from moto.core.config import default_user_config
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    previous_port = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)  # where the interpreter's own clients call
    config = default_user_config.setdefault("stepfunctions", {})
    config["execute_state_machine"] = True
    original_start = StepFunctionResponse.start_execution

    def start_execution(self: Any) -> Any:
        # moto 5.2.5's handler drops StartExecution's traceHeader (its backend takes it): without
        # it, no step could join the trace of whoever started the saga.
        execution = self.stepfunction_backend.start_execution(
            self._get_param("stateMachineArn"), self._get_param("name"),
            self._get_param("input", if_none="{}"), trace_header=self._get_param("traceHeader"))
        return ActionResult({"executionArn": execution.execution_arn, "startDate": execution.start_date})

    StepFunctionResponse.start_execution = start_execution  # type: ignore[method-assign]

    def undo() -> None:
        StepFunctionResponse.start_execution = original_start  # type: ignore[method-assign]
        config["execute_state_machine"] = False
        if previous_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous_port

    return undo


# How many invocations of one function a state machine's tasks run at once here. Lambda would run
# them all (up to the account's concurrency); each one here is a container process, and 2 cores
# shared by hundreds of executions do better with a few busy ones than with hundreds of processes
# starting. The others wait their turn, as an invocation throttled and retried would.
TASK_CONCURRENCY = 4


def route_lambda_tasks(invoke: Callable[..., Any], functions: Iterable[Function], *, account_id: str,
                       region: str, concurrency: int = TASK_CONCURRENCY) -> Callable[[], None]:
    """Route moto's Lambda Invoke of `functions` to `invoke(function, event, records=0,
    trace_header=...)` (the emulator's), at most `concurrency` at once per function; returns what
    undoes it."""
    from moto.awslambda.models import LambdaBackend

    by_name = {function.function_name: function for function in functions}
    slots = {name: threading.BoundedSemaphore(concurrency) for name in by_name}
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
        with slots[function.function_name]:
            outcome = invoke(function, event, records=0, trace_header=_trace_header(event, account_id, region))
        if outcome.ok:
            return json.dumps(outcome.result, default=str).encode()
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(outcome.error_response(function)).encode()

    LambdaBackend.invoke = routed_invoke  # type: ignore[method-assign]

    def undo() -> None:
        LambdaBackend.invoke = original  # type: ignore[method-assign]

    return undo


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
