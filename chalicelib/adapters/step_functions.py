"""Starting an order's saga: a Step Functions execution named by the order.

Execution names are unique per state machine (for 90 days after an execution closes), so naming
an execution by its order makes a second start of the same order a no-op: the consumer can start
it on every delivery of the order's message without a check first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import DependencyUnavailable

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

__all__ = ["StepFunctionsOrderSagas"]


class StepFunctionsOrderSagas:
    def __init__(self, client: Callable[[], SFNClient], state_machine_arn: str) -> None:
        self._sfn = client
        self._arn = state_machine_arn

    def start(self, order_id: str, trace_header: str | None) -> None:
        self._start(order_id, {"order_id": order_id}, trace_header)

    def start_cancellation(self, order_id: str, trace_header: str | None) -> None:
        # Its own name: the order's first execution has finished (the order was confirmed).
        self._start(f"{order_id}-cancel", {"order_id": order_id, "action": "cancel"}, trace_header)

    def _start(self, name: str, payload: dict[str, Any], trace_header: str | None) -> None:
        params: dict[str, Any] = {"stateMachineArn": self._arn, "name": name,
                                  "input": json.dumps(payload, separators=(",", ":"))}
        if trace_header:
            params["traceHeader"] = trace_header  # the saga joins the starter's trace
        try:
            self._sfn().start_execution(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return  # started before (a redelivery, or a retry after a lost answer)
            raise DependencyUnavailable(f"the saga of {name} could not be started: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"the saga of {name} could not be started: {exc}") from exc
