"""A tiny in-process interpreter of infra/order_saga.asl.json for unit tests.

It reads the definition itself (the states, their order, each Task's Retry and Catch), so the
unit tests follow the state machine as it is written and cannot drift from it; it calls the
`OrderSaga` step each Task's `Payload.step` names, as chalicelib/entrypoints/saga_steps.py does.
Only the subset the definition uses is understood (Choice on `IsPresent`, Pass with a Result,
Task, Succeed, Fail; ResultPath null or `$.error`); anything else fails loudly. Waits are not
slept: a retry's interval is recorded and, with a clock, the clock moved by it.

This is a stand-in: the real interpreter (moto's Step Functions, and AWS) runs the same
definition in the integration and e2e tests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from chalicelib.services.order_saga import OrderSaga
from tests.unit.fakes import FakeClock, InMemoryOrderSagas, SagaStart

__all__ = ["DEFINITION_PATH", "load_definition", "SagaRunner", "Execution", "Fault"]

DEFINITION_PATH = Path(__file__).resolve().parents[2] / "infra" / "order_saga.asl.json"

# Errors Step Functions' "States.ALL" does not match (none of our steps raise them).
_NOT_ALL = frozenset({"States.DataLimitExceeded", "States.Runtime"})

# A hook run before each attempt of a step: (step, order_id, attempt) -> None, or raise to fail it.
Fault = Callable[[str, str, int], None]


def load_definition(path: Path = DEFINITION_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        definition: dict[str, Any] = json.load(file)
    return definition


def _steps(saga: OrderSaga) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
    """The step each Task names, called as saga_steps.py calls it (`end` gets the caught error's name)."""
    return {
        "authorize": lambda p: saga.authorize(p["order_id"]),
        "capture": lambda p: saga.capture(p["order_id"]),
        "release": lambda p: saga.release_payment(p["order_id"], _error(p)),
        "confirm": lambda p: saga.confirm(p["order_id"]),
        "restock": lambda p: saga.restock(p["order_id"]),
        "end": lambda p: saga.end(p["order_id"], _error(p)),
        "notify": lambda p: saga.notify(p["order_id"]),
    }


def _error(payload: Mapping[str, Any]) -> str | None:
    return payload["error"]["Error"] if payload.get("error") is not None else None


@dataclass
class Execution:
    name: str
    status: str = "RUNNING"  # then SUCCEEDED or FAILED, as Step Functions says
    error: str | None = None  # a Fail state's Error, or the uncaught error of a Task
    failed_at: str | None = None  # the Task whose uncaught error failed the execution
    path: list[str] = field(default_factory=list)  # the states entered, in order
    attempts: Counter[str] = field(default_factory=Counter)  # Task state -> times its step was called
    errors: list[tuple[str, str]] = field(default_factory=list)  # (state, error name) of each failed attempt
    waits: list[float] = field(default_factory=list)  # the retry intervals, in seconds
    data: dict[str, Any] = field(default_factory=dict)  # the state data, for a redrive


class SagaRunner:
    """Runs executions of the order saga to their end over `saga`.

    `faults` maps a step name (`authorize`, ..., `end`) to a hook called before each of its
    attempts; `repeat=True` calls every step twice per attempt (a retry after a lost answer, a
    redrive) and goes on with the second answer. `clock`, if given, moves by each retry's wait.
    """

    def __init__(self, saga: OrderSaga, *, clock: FakeClock | None = None,
                 definition: Mapping[str, Any] | None = None) -> None:
        self.definition = definition if definition is not None else load_definition()
        self.faults: dict[str, Fault] = {}
        self.repeat = False
        self.executions: list[Execution] = []
        self._steps = _steps(saga)
        self._clock = clock

    def run_pending(self, sagas: InMemoryOrderSagas) -> list[Execution]:
        """Run every execution started and not yet run (and those they start), oldest first."""
        done = []
        while sagas.pending:
            start: SagaStart = sagas.pending.pop(0)
            done.append(self.run(start.input, name=start.name))
        return done

    def run(self, input: Mapping[str, Any], *, name: str | None = None) -> Execution:
        execution = Execution(name or str(input.get("order_id")))
        self.executions.append(execution)
        return self._from(execution, dict(input), self.definition["StartAt"])

    def redrive(self, execution: Execution) -> Execution:
        """As RedriveExecution: a failed execution resumes at the state that failed, with its data."""
        assert execution.status == "FAILED" and execution.failed_at is not None, execution
        current, execution.status, execution.error, execution.failed_at = execution.failed_at, "RUNNING", None, None
        return self._from(execution, execution.data, current)

    def _from(self, execution: Execution, data: dict[str, Any], current: str) -> Execution:
        execution.data = data
        states = self.definition["States"]
        while True:
            execution.path.append(current)
            state = states[current]
            kind = state["Type"]
            if kind == "Succeed":
                execution.status = "SUCCEEDED"
                return execution
            if kind == "Fail":
                execution.status, execution.error = "FAILED", state["Error"]
                return execution
            if kind == "Choice":
                current = self._choose(state, data)
                continue
            if kind == "Pass":
                self._put(data, state.get("ResultPath", "$"), state.get("Result"))
            elif kind == "Task":
                try:
                    caught = self._task(execution, current, state, data)
                except _Uncaught as uncaught:
                    # As Step Functions: the execution fails at this state (a redrive resumes here).
                    execution.status, execution.error, execution.failed_at = "FAILED", uncaught.error, current
                    return execution
                if caught is not None:
                    self._put(data, caught["ResultPath"], caught["error"])
                    current = caught["Next"]
                    continue
            else:
                raise NotImplementedError(f"state type {kind} ({current}) is not understood by the unit runner")
            if state.get("End"):
                execution.status = "SUCCEEDED"
                return execution
            current = state["Next"]

    def _choose(self, state: Mapping[str, Any], data: Mapping[str, Any]) -> str:
        for choice in state["Choices"]:
            if set(choice) != {"Variable", "IsPresent", "Next"}:
                raise NotImplementedError(f"choice {choice} is not understood by the unit runner")
            present = self._get(data, choice["Variable"]) is not _ABSENT
            if present == choice["IsPresent"]:
                return str(choice["Next"])
        return str(state["Default"])

    def _task(self, execution: Execution, name: str, state: Mapping[str, Any],
              data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Runs the Task's step with its retries; None when it succeeded, else the Catch taken."""
        if state.get("ResultPath", "$") is not None:
            raise NotImplementedError("the unit runner only discards task results (ResultPath null)")
        payload = self._payload(state["Parameters"]["Payload"], data, execution)
        step = payload["step"]
        retried: Counter[int] = Counter()  # retrier index -> retries it has made
        while True:
            execution.attempts[name] += 1
            try:
                for _ in range(2 if self.repeat else 1):
                    if step in self.faults:
                        self.faults[step](step, payload["order_id"], execution.attempts[name])
                    self._steps[step](payload)
                return None
            except Exception as exc:  # a Lambda error's name is its exception's class name
                error = type(exc).__name__
                execution.errors.append((name, error))
                retrier = self._retrier(state, error)
                if retrier is not None:
                    index, rule = retrier
                    if retried[index] < rule.get("MaxAttempts", 3):
                        wait = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** retried[index]
                        retried[index] += 1
                        execution.waits.append(wait)
                        if self._clock is not None:
                            self._clock.advance(timedelta(seconds=wait))
                        continue
                for catch in state.get("Catch", []):
                    if _matches(catch["ErrorEquals"], error):
                        if catch.get("ResultPath") != "$.error":
                            raise NotImplementedError("the unit runner only catches into $.error") from exc
                        return {"ResultPath": "$.error", "Next": catch["Next"],
                                "error": {"Error": error, "Cause": str(exc)}}
                raise _Uncaught(error) from exc

    @staticmethod
    def _retrier(state: Mapping[str, Any], error: str) -> tuple[int, Mapping[str, Any]] | None:
        for index, rule in enumerate(state.get("Retry", [])):
            if _matches(rule["ErrorEquals"], error):
                return index, rule
        return None

    def _payload(self, template: Mapping[str, Any], data: Mapping[str, Any], execution: Execution) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for key, value in template.items():
            if not key.endswith(".$"):
                payload[key] = value
            elif value == "$$.Execution.Id":
                payload[key[:-2]] = f"arn:aws:states:unit:execution:OrderSaga:{execution.name}"
            else:
                found = self._get(data, value)
                if found is _ABSENT:  # Step Functions fails the state: States.Runtime
                    raise KeyError(f"{value} is not in the state's input")
                payload[key[:-2]] = found
        return payload

    @staticmethod
    def _get(data: Mapping[str, Any], path: str) -> Any:
        if not path.startswith("$."):
            raise NotImplementedError(f"path {path} is not understood by the unit runner")
        node: Any = data
        for part in path[2:].split("."):
            if not isinstance(node, Mapping) or part not in node:
                return _ABSENT
            node = node[part]
        return node

    @staticmethod
    def _put(data: dict[str, Any], path: str | None, value: Any) -> None:
        if path is None:
            return
        if not path.startswith("$.") or "." in path[2:]:
            raise NotImplementedError(f"result path {path} is not understood by the unit runner")
        data[path[2:]] = value


_ABSENT = object()


class _Uncaught(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _matches(names: list[str], error: str) -> bool:
    return error in names or ("States.ALL" in names and error not in _NOT_ALL)
