"""The order saga's step functions (chalicelib/entrypoints/saga_steps.py), invoked as the state
machine's Lambda tasks invoke them, in the order infra/order_saga.asl.json takes them, over moto's
tables, Secrets Manager, SES and Cognito and the payment provider's stand-in (tests/integration/app/
conftest.py). The executions the consumer starts are recorded by moto and run by nobody: each test
plays the state machine's part, step by step."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.orders import OrderCancelled, OrderEnded
from chalicelib.domain.payments import PaymentDeclined, PaymentProviderUnavailable
from chalicelib.entrypoints.saga_steps import SagaInputError
from chalicelib.services.order_saga import StepError
from devstack.tokens import local_email
from tests.integration.app.conftest import REGION
from tests.integration.app.helpers import User, body_of
from tests.integration.app.orders_helpers import (
    DynamoDBWire, OrdersQueue, new_product, place, read_order, saga_step, stock_of,
)

pytestmark = pytest.mark.timeout(60)

PRICE, STOCK = 1200, 5


@pytest.fixture
def reserved(api, lambdas, alice, bob, orders_queue: OrdersQueue) -> Callable[..., tuple[str, str]]:
    """An order of bob's for a product of alice's, reserved by the consumer: (product id, order id)."""

    def make(card: str = "pm_card_visa", quantity: int = 1) -> tuple[str, str]:
        product_id = new_product(api, alice, stock=STOCK)
        order_id = body_of(place(api, bob, product_id, quantity, payment_method=card))["order_id"]
        event = orders_queue.event(orders_queue.receive(1))
        assert lambdas.invoke("consume_orders", event).payload == {"batchItemFailures": []}
        assert read_order(api, bob, order_id)["status"] == "reserved"
        return product_id, order_id

    return make


def provider_calls(stack, order_id: str) -> dict[str, int]:
    """What the payment stand-in was asked for this order, by operation (create, capture, ...)."""
    calls: dict[str, int] = json.loads(urllib3.request("GET", stack.payments.url + "/_devstack/calls").data)[
        "orders"].get(order_id, {})
    return {operation: n for operation, n in calls.items() if operation != "total"}


def intents_of(stack, order_id: str) -> list[dict[str, Any]]:
    response = urllib3.request("GET", f"{stack.payments.url}/v1/payment_intents?limit=100",
                               headers={"Authorization": f"Bearer {stack.payments.api_key}"})
    return [i for i in json.loads(response.data)["data"] if i["metadata"].get("order_id") == order_id]


def intent(stack, reference: str) -> dict[str, Any]:
    response = urllib3.request("GET", f"{stack.payments.url}/v1/payment_intents/{reference}",
                               headers={"Authorization": f"Bearer {stack.payments.api_key}"})
    found: dict[str, Any] = json.loads(response.data)
    return found


def mail_about(order_id: str) -> list[Any]:
    return [m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
            if order_id in getattr(m, "subject", "")]


def compensate(lambdas: Any, order_id: str, error: dict[str, str] | None) -> list[Any]:
    """ReleasePayment, Restock, EndOrder: the compensation, as the state machine runs it."""
    return [saga_step(lambdas, "release", order_id), saga_step(lambdas, "restock", order_id),
            saga_step(lambdas, "end", order_id, error)]


def caught(error: str) -> dict[str, str]:
    """What a Catch puts in `$.error`: the error's name and Lambda's payload as its cause."""
    return {"Error": error, "Cause": json.dumps({"errorMessage": f"{error} in a test", "errorType": error})}


# The forward path


def test_an_approved_order_is_authorized_captured_confirmed_and_its_buyer_emailed(
        api, stack, lambdas, bob: User, reserved):
    product_id, order_id = reserved(quantity=2)

    results = [saga_step(lambdas, step, order_id) for step in ("authorize", "capture", "confirm", "notify")]

    assert [r["result"] for r in results] == ["authorized", "captured", "None", "True"]
    order = read_order(api, bob, order_id)
    assert (order["status"], order["amount_cents"], order["payment"]["status"]) == ("confirmed", 2 * PRICE, "captured")
    assert [h["status"] for h in order["history"]] == ["queued", "reserved", "paid", "confirmed"]
    paid = intent(stack, order["payment"]["reference"])
    assert (paid["status"], paid["amount_received"], paid["metadata"]) == ("succeeded", 2 * PRICE,
                                                                           {"order_id": order_id})
    assert provider_calls(stack, order_id) == {"create": 1, "capture": 1}
    assert stock_of(api, product_id) == STOCK - 2
    (mail,) = mail_about(order_id)
    assert mail.destinations == {"ToAddresses": [local_email(bob.username)]}
    assert order_id in mail.body


def test_every_step_run_twice_does_nothing_new(api, stack, lambdas, bob, reserved):
    _, order_id = reserved()

    for step in ("authorize", "capture", "confirm", "notify"):
        first, again = saga_step(lambdas, step, order_id), saga_step(lambdas, step, order_id)
        assert again["step"] == first["step"]

    assert read_order(api, bob, order_id)["status"] == "confirmed"
    assert provider_calls(stack, order_id) == {"create": 1, "capture": 1}  # a repeat asks the provider nothing
    assert len(mail_about(order_id)) == 1


# Declines and an unavailable provider: compensated, one ending


@pytest.mark.parametrize("card, reason", [("pm_card_chargeDeclined", "card_declined"),
                                          ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")])
def test_a_declined_card_is_released_restocked_and_ends_payment_failed(
        api, stack, lambdas, bob, reserved, card, reason):
    product_id, order_id = reserved(card)
    assert stock_of(api, product_id) == STOCK - 1

    with pytest.raises(PaymentDeclined):
        saga_step(lambdas, "authorize", order_id)
    outcomes = compensate(lambdas, order_id, caught("PaymentDeclined"))

    assert [o["result"] for o in outcomes] == ["failed", "True", "payment_failed"]
    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"], order["payment"]["status"]) == ("payment_failed", reason, "failed")
    assert stock_of(api, product_id) == STOCK
    assert "capture" not in provider_calls(stack, order_id)
    assert mail_about(order_id) == []


def test_an_unavailable_provider_is_retryable_and_after_the_retries_the_order_ends_payment_failed(
        api, lambdas, bob, reserved):
    product_id, order_id = reserved("pm_card_unavailable")

    for _ in range(4):  # the first attempt and the state machine's three retries
        with pytest.raises(PaymentProviderUnavailable):
            saga_step(lambdas, "authorize", order_id)
    compensate(lambdas, order_id, caught("PaymentProviderUnavailable"))

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"]) == ("payment_failed", "payment_provider_unavailable")
    assert stock_of(api, product_id) == STOCK


def test_an_outage_of_the_provider_retried_with_the_same_key_authorizes_once(api, stack, lambdas, bob, reserved):
    _, order_id = reserved()
    urllib3.request("POST", stack.payments.url + "/_devstack/faults", json={"unavailable_next": 1})

    with pytest.raises(PaymentProviderUnavailable):
        saga_step(lambdas, "authorize", order_id)
    saga_step(lambdas, "authorize", order_id)  # the state machine's retry

    order = read_order(api, bob, order_id)
    assert (order["status"], order["payment"]["status"]) == ("reserved", "authorized")
    assert provider_calls(stack, order_id) == {"create": 2}  # asked twice (same Idempotency-Key) ...
    assert len(intents_of(stack, order_id)) == 1  # ... authorized once


# Cancellations


def test_a_cancel_while_reserved_stops_the_saga_and_compensates_to_cancelled(api, stack, lambdas, bob, reserved):
    product_id, order_id = reserved()
    saga_step(lambdas, "authorize", order_id)
    assert api.post(f"/orders/{order_id}/cancel", headers=bob.headers(), body="").status_code == 202

    with pytest.raises(OrderCancelled):
        saga_step(lambdas, "capture", order_id)
    compensate(lambdas, order_id, caught("OrderCancelled"))

    order = read_order(api, bob, order_id)
    assert (order["status"], order["reason"], order["payment"]["status"]) == ("cancelled", "cancelled_by_buyer",
                                                                              "voided")
    assert intent(stack, order["payment"]["reference"])["status"] == "canceled"
    assert stock_of(api, product_id) == STOCK


def test_a_confirmed_order_cancelled_is_refunded_restocked_and_ends_cancelled(api, stack, lambdas, bob, reserved):
    product_id, order_id = reserved()
    for step in ("authorize", "capture", "confirm"):
        saga_step(lambdas, step, order_id)
    assert api.post(f"/orders/{order_id}/cancel", headers=bob.headers(), body="").status_code == 202

    outcomes = compensate(lambdas, order_id, None)  # the `-cancel` execution: no error

    assert [o["result"] for o in outcomes] == ["refunded", "True", "cancelled"]
    order = read_order(api, bob, order_id)
    assert (order["status"], order["payment"]["status"]) == ("cancelled", "refunded")
    assert provider_calls(stack, order_id) == {"create": 1, "capture": 1, "refund": 1}
    assert stock_of(api, product_id) == STOCK
    with pytest.raises(OrderEnded):  # a late forward step finds nothing left to do
        saga_step(lambdas, "confirm", order_id)


# Faults of ours and of DynamoDB


@pytest.fixture
def wire() -> Iterator[DynamoDBWire]:
    with DynamoDBWire().watching() as watching:
        yield watching


def test_dynamodb_throttling_during_a_step_is_dependency_unavailable_and_the_retry_finishes_it(
        api, lambdas, bob, reserved, wire):
    _, order_id = reserved()
    saga_step(lambdas, "authorize", order_id)
    saga_step(lambdas, "capture", order_id)
    wire.fail("UpdateItem", "ProvisionedThroughputExceededException", times=1)

    with pytest.raises(DependencyUnavailable):
        saga_step(lambdas, "confirm", order_id)
    assert read_order(api, bob, order_id)["status"] == "paid"
    saga_step(lambdas, "confirm", order_id)  # the state machine's retry

    assert read_order(api, bob, order_id)["status"] == "confirmed"


@pytest.mark.parametrize("function, event", [
    ("order_saga_payment", {}),
    ("order_saga_payment", ["authorize"]),
    ("order_saga_payment", {"step": "confirm", "order_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),  # another function's
    ("order_saga_order", {"step": "drop_tables", "order_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
    ("order_saga_order", {"step": "confirm", "order_id": "../../etc"}),
    ("order_saga_order", {"step": "end", "order_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "error": "boom"}),
    ("order_saga_notify", {"step": "notify"}),
])
def test_input_the_state_machine_never_sends_is_a_saga_input_error(lambdas, wire, function, event):
    with pytest.raises(SagaInputError):
        lambdas.invoke(function, event)

    assert sum(wire.calls.values()) == 0  # refused before anything was read or written


def test_a_step_for_an_order_that_does_not_exist_is_a_step_error(lambdas):
    with pytest.raises(StepError):
        saga_step(lambdas, "confirm", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
