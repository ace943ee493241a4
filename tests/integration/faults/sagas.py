"""The order saga's executions run as Step Functions runs them, driven by the test.

The test stack's moto records the executions the consumer starts and runs none (its interpreter
would invoke Lambda through Docker). Here each recorded execution is run through the tests' own
reading of infra/order_saga.asl.json (tests/unit/saga_runner.py: its states, each Task's Retry
and Catch by the error's name, waits not slept) with every Task invoking the step's Lambda
function through `app.handler_map`, as Lambda would call it, named `running` so that faults aimed
at the saga reach its steps and nothing else. An error a step raises reaches the state machine by
its class name, as a Lambda error does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from devstack.invocations import build_middleware_chain
from devstack.lambda_context import FunctionSettings, LambdaContext
from tests.integration.app.orders_helpers import SAGA_FUNCTIONS, executions_named
from tests.integration.faults.injection import running
from tests.unit.saga_runner import Execution, SagaRunner

__all__ = ["SAGA", "SagaDriver"]

SAGA = "order_saga"  # the name faults aim at: every step function of the saga


class _LambdaTasks(SagaRunner):
    """SagaRunner whose Tasks invoke the step functions instead of calling OrderSaga directly."""

    def __init__(self, app: Any) -> None:
        from chalicelib.bootstrap import services

        super().__init__(services().order_saga)
        self._app = app
        self._steps = {step: self._task_invoking(function) for step, function in SAGA_FUNCTIONS.items()}

    def _task_invoking(self, function: str) -> Any:
        def invoke(payload: Mapping[str, Any]) -> Any:
            handler = self._app.handler_map[function]
            build_middleware_chain(handler)
            token = running.set(SAGA)
            try:
                return handler(dict(payload), LambdaContext(
                    function, settings=FunctionSettings(timeout_seconds=60, memory_mb=512), region="us-east-1",
                    account_id="123456789012"))
            finally:
                running.reset(token)

        return invoke


class SagaDriver:
    def __init__(self, app: Any, sfn: Any, state_machine_arn: str) -> None:
        self._app = app
        self._sfn = sfn
        self._arn = state_machine_arn

    def run(self, names: list[str], *, repeat: bool = False) -> dict[str, Execution]:
        """Run the recorded executions called `names` to their end; `repeat` invokes every step
        twice per attempt (a Lambda retry after a lost answer, a redrive)."""
        runner = _LambdaTasks(self._app)
        runner.repeat = repeat
        done = {}
        for name in names:
            (recorded,) = executions_named(self._sfn, self._arn, name)
            started = self._sfn.describe_execution(executionArn=recorded["executionArn"])
            done[name] = runner.run(json.loads(started["input"]), name=name)
        return done
