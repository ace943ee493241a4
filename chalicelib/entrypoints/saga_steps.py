"""The order saga's steps, as the state machine (infra/order_saga.asl.json) invokes them.

Three functions, split by what they may touch (infra/policies.py): the payment steps reach the
provider and its key, the order steps only the tables, the e-mail step SES and the user pool.
Each takes `{"step": ..., "order_id": ...}` (and `error` for the last compensation step) and
raises a typed error whose class name the state machine catches: PaymentDeclined (not retried),
PaymentProviderUnavailable and DependencyUnavailable (retried with backoff), OrderCancelled
(compensate), OrderEnded (nothing left to do).

```mermaid
flowchart LR
    OrdersQueue --> consume_orders -- StartExecution --> OrderSagaStateMachine
    OrderSagaStateMachine --> order_saga_payment & order_saga_order & order_saga_notify
```
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import Blueprint

from chalicelib.bootstrap import services
from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.ids import is_id
from chalicelib.logs import logger

__all__ = ["steps", "SagaInputError"]

steps = Blueprint(__name__)

_MAX_ERROR_NAME = 256


class SagaInputError(PoisonMessage):
    """Input the state machine would never send: the step fails at once, without retries."""


def _read(event: Any, allowed: frozenset[str]) -> tuple[str, str]:
    if not isinstance(event, Mapping):
        raise SagaInputError("a saga step takes a JSON object")
    step, order_id = event.get("step"), event.get("order_id")
    if not isinstance(step, str) or step not in allowed:
        raise SagaInputError(f"step must be one of {sorted(allowed)}")
    if not isinstance(order_id, str) or not is_id(order_id):
        raise SagaInputError("order_id must be an order id")
    services().tracer.annotate(order_id=order_id, saga_step=step)
    return step, order_id


def _run(step: str, order_id: str, action: Callable[[], Any]) -> dict[str, Any]:
    result = action()
    logger.info("saga step done", extra={"order_id": order_id, "step": step, "result": str(result)})
    return {"order_id": order_id, "step": step, "result": str(result)}


@steps.lambda_function(name="order_saga_payment")
def order_saga_payment(event: Any, context: Any) -> dict[str, Any]:
    """authorize, capture (forward) and release (compensation: void or refund)."""
    step, order_id = _read(event, frozenset({"authorize", "capture", "release"}))
    saga = services().order_saga
    if step == "release":
        error = _error_name(event.get("error"))
        return _run(step, order_id, lambda: saga.release_payment(order_id, error).status)
    action = saga.authorize if step == "authorize" else saga.capture
    return _run(step, order_id, lambda: action(order_id).status)


@steps.lambda_function(name="order_saga_order")
def order_saga_order(event: Any, context: Any) -> dict[str, Any]:
    """confirm (forward), restock and end (compensation)."""
    step, order_id = _read(event, frozenset({"confirm", "restock", "end"}))
    saga = services().order_saga
    if step == "confirm":
        return _run(step, order_id, lambda: saga.confirm(order_id))
    if step == "restock":
        return _run(step, order_id, lambda: saga.restock(order_id))
    error = _error_name(event.get("error"))
    if error is not None:
        logger.warning("order saga compensated", extra={"order_id": order_id, "error": error,
                                                        "cause": _cause_summary(event["error"])})
    return _run(step, order_id, lambda: saga.end(order_id, error))


@steps.lambda_function(name="order_saga_notify")
def order_saga_notify(event: Any, context: Any) -> dict[str, Any]:
    """E-mail the buyer that the order is confirmed."""
    step, order_id = _read(event, frozenset({"notify"}))
    return _run(step, order_id, lambda: services().order_saga.notify(order_id))


def _error_name(error: Any) -> str | None:
    """The caught error's name (`{"Error": name, "Cause": ...}` as Step Functions' Catch gives it);
    None when the saga was started to cancel (no error)."""
    if error is None:
        return None
    if not isinstance(error, Mapping) or not isinstance(error.get("Error"), str):
        raise SagaInputError("error must be a caught error ({'Error': name, 'Cause': text})")
    name: str = error["Error"][:_MAX_ERROR_NAME]
    return name


def _cause_summary(error: Mapping[str, Any]) -> str:
    """The first line of the caught error's message (its Cause is Lambda's whole error payload,
    traceback included: the execution's history keeps that)."""
    cause = error.get("Cause")
    if not isinstance(cause, str):
        return ""
    try:
        payload = json.loads(cause)
        message = payload.get("errorMessage", "") if isinstance(payload, dict) else cause
    except ValueError:
        message = cause
    return str(message).split("\n", 1)[0][:500]
