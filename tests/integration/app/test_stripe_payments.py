"""The payments adapter (chalicelib/adapters/stripe_payments.py) against the local stand-in provider
(devstack/payments.py) on a free port, its API key in the template's secret in moto."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from chalicelib.adapters.stripe_payments import StripePayments
from chalicelib.domain.payments import (
    PaymentDeclined, PaymentProviderUnavailable, PaymentRefused, payment_step_key,
)
from devstack.payments import PaymentsStandIn
from tests.integration.app.conftest import Stack

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def provider() -> Iterator[PaymentsStandIn]:
    stand_in = PaymentsStandIn().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def secret_arn(stack: Stack, provider: PaymentsStandIn) -> str:
    """The template's PaymentsApiKeySecret, holding the stand-in's key (as the local stack puts it)."""
    arn = stack.provisioned["PaymentsApiKeySecret"].ref
    stack.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=provider.api_key)
    return arn


class SecretReads:
    """A real Secrets Manager client for moto that counts its GetSecretValue calls."""

    def __init__(self, stack: Stack) -> None:
        self.count = 0
        self.client = stack.client("secretsmanager")
        self.client.meta.events.register("before-call.secrets-manager.GetSecretValue", self._counted)

    def _counted(self, **_: Any) -> None:
        self.count += 1


@pytest.fixture
def reads(stack: Stack) -> SecretReads:
    return SecretReads(stack)


@pytest.fixture
def payments(reads: SecretReads, secret_arn: str, provider: PaymentsStandIn) -> StripePayments:
    """A fresh adapter, as a new Lambda container builds it."""
    return StripePayments(lambda: reads.client, secret_arn, api_url=provider.url)


def _get(provider: PaymentsStandIn, path: str) -> Any:
    response = urllib3.request("GET", provider.url + path, headers={"Authorization": f"Bearer {provider.api_key}"})
    return json.loads(response.data)


def _intent(provider: PaymentsStandIn, reference: str) -> dict[str, Any]:
    intent: dict[str, Any] = _get(provider, f"/v1/payment_intents/{reference}")
    return intent


def _calls(provider: PaymentsStandIn, order_id: str) -> dict[str, int]:
    calls: dict[str, int] = _get(provider, "/_devstack/calls")["orders"].get(order_id, {})
    return calls


_ORDERS = iter(range(1_000_000))


def _authorize(payments: StripePayments, *, token: str = "pm_card_visa", amount: int = 1250,
               order_id: str | None = None) -> tuple[str, str]:
    """Authorize a new order's payment; (order id, reference)."""
    order_id = order_id or f"ord-{next(_ORDERS)}-{threading.get_ident()}"
    reference = payments.authorize(order_id=order_id, amount_cents=amount, currency="EUR", payment_method=token,
                                   idempotency_key=payment_step_key(order_id, "authorize"))
    return order_id, reference


# --- the happy paths ---------------------------------------------------------------------------


def test_authorize_creates_a_confirmed_manual_capture_intent_for_the_order(payments, provider) -> None:
    order_id, reference = _authorize(payments, amount=1250)

    intent = _intent(provider, reference)
    assert reference.startswith("pi_")
    assert (intent["status"], intent["amount"], intent["amount_capturable"], intent["currency"]) == (
        "requires_capture", 1250, 1250, "eur")
    assert intent["capture_method"] == "manual"
    assert intent["metadata"] == {"order_id": order_id}


def test_capture_takes_the_authorized_amount(payments, provider) -> None:
    order_id, reference = _authorize(payments, amount=900)

    payments.capture(reference, idempotency_key=payment_step_key(order_id, "capture"))

    intent = _intent(provider, reference)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 900)


def test_void_cancels_an_authorization_that_was_not_captured(payments, provider) -> None:
    order_id, reference = _authorize(payments)

    payments.void(reference, idempotency_key=payment_step_key(order_id, "void"))

    assert _intent(provider, reference)["status"] == "canceled"


def test_refund_gives_a_captured_payment_back_in_full(payments, provider) -> None:
    order_id, reference = _authorize(payments, amount=4200)
    payments.capture(reference, idempotency_key=payment_step_key(order_id, "capture"))

    payments.refund(reference, idempotency_key=payment_step_key(order_id, "refund"))

    (refund,) = _get(provider, f"/v1/refunds?payment_intent={reference}")["data"]
    assert (refund["amount"], refund["status"]) == (4200, "succeeded")


# --- how the provider says no ------------------------------------------------------------------


@pytest.mark.parametrize("token, reason", [
    ("pm_card_chargeDeclined", "card_declined"),  # Stripe's decline_code generic_decline is no reason of ours
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
])
def test_a_declined_card_is_a_payment_declined_with_its_reason(payments, provider, token, reason) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        _authorize(payments, token=token)

    assert declined.value.reason == reason


def test_a_provider_answering_503_is_unavailable(payments) -> None:
    with pytest.raises(PaymentProviderUnavailable):
        _authorize(payments, token="pm_card_unavailable")


def test_an_injected_outage_is_unavailable_and_the_retry_with_the_same_key_succeeds(payments, provider) -> None:
    order_id, reference = _authorize(payments)
    key = payment_step_key(order_id, "capture")
    urllib3.request("POST", provider.url + "/_devstack/faults", json={"unavailable_next": 1})

    with pytest.raises(PaymentProviderUnavailable):
        payments.capture(reference, idempotency_key=key)
    payments.capture(reference, idempotency_key=key)

    assert _intent(provider, reference)["status"] == "succeeded"
    assert _calls(provider, order_id)["capture"] == 2


def test_an_unknown_payment_method_is_refused_not_declined(payments) -> None:
    with pytest.raises(PaymentRefused, match="No such PaymentMethod"):
        _authorize(payments, token="pm_card_made_up")


def test_capturing_a_voided_payment_is_refused(payments) -> None:
    order_id, reference = _authorize(payments)
    payments.void(reference, idempotency_key=payment_step_key(order_id, "void"))

    with pytest.raises(PaymentRefused, match="status of canceled"):
        payments.capture(reference, idempotency_key=payment_step_key(order_id, "capture"))


def test_refunding_an_uncaptured_payment_is_refused(payments) -> None:
    order_id, reference = _authorize(payments)

    with pytest.raises(PaymentRefused):
        payments.refund(reference, idempotency_key=payment_step_key(order_id, "refund"))


# --- when the provider cannot be reached -------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_provider_that_never_answers_is_unavailable_after_the_read_timeout(reads, secret_arn, silent_server) -> None:
    payments = StripePayments(lambda: reads.client, secret_arn, api_url=silent_server, read_timeout=0.2)

    with pytest.raises(PaymentProviderUnavailable, match="did not answer"):
        _authorize(payments)


def test_a_provider_that_refuses_connections_is_unavailable(reads, secret_arn) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: connections are refused
        payments = StripePayments(lambda: reads.client, secret_arn, api_url=url)

        with pytest.raises(PaymentProviderUnavailable):
            _authorize(payments)


# --- idempotency -------------------------------------------------------------------------------


def test_a_repeated_authorize_with_its_key_gives_the_same_payment_and_makes_no_second(payments, provider) -> None:
    order_id, first = _authorize(payments)
    _, again = _authorize(payments, order_id=order_id)

    assert again == first
    assert [i["id"] for i in _get(provider, "/v1/payment_intents?limit=100")["data"]
            if i["metadata"]["order_id"] == order_id] == [first]
    assert _calls(provider, order_id)["create"] == 2


def test_a_repeated_capture_void_or_refund_with_its_key_succeeds(payments, provider) -> None:
    order_id, captured = _authorize(payments)
    other_order_id, voided = _authorize(payments)
    for _ in range(2):
        payments.capture(captured, idempotency_key=payment_step_key(order_id, "capture"))
        payments.refund(captured, idempotency_key=payment_step_key(order_id, "refund"))
        payments.void(voided, idempotency_key=payment_step_key(other_order_id, "void"))

    assert len(_get(provider, f"/v1/refunds?payment_intent={captured}")["data"]) == 1


def test_a_capture_void_or_refund_that_already_happened_under_another_key_is_a_success(payments, provider) -> None:
    order_id, captured = _authorize(payments)
    other_order_id, voided = _authorize(payments)
    payments.capture(captured, idempotency_key=f"by-hand-{captured}-capture")
    payments.refund(captured, idempotency_key=f"by-hand-{captured}-refund")
    payments.void(voided, idempotency_key=f"by-hand-{voided}-void")

    payments.capture(captured, idempotency_key=payment_step_key(order_id, "capture"))
    payments.refund(captured, idempotency_key=payment_step_key(order_id, "refund"))
    payments.void(voided, idempotency_key=payment_step_key(other_order_id, "void"))

    assert (_intent(provider, captured)["status"], _intent(provider, voided)["status"]) == ("succeeded", "canceled")


def test_a_key_reused_for_another_request_is_refused(payments) -> None:
    order_id, _ = _authorize(payments, amount=1000)

    with pytest.raises(PaymentRefused, match="idempotent"):
        _authorize(payments, order_id=order_id, amount=2000)


# --- the API key -------------------------------------------------------------------------------


def test_the_key_is_read_once_per_container_however_many_calls_and_threads(
        reads: SecretReads, payments: StripePayments) -> None:
    errors: list[BaseException] = []

    def authorize_and_capture() -> None:
        try:
            order_id, reference = _authorize(payments)
            payments.capture(reference, idempotency_key=payment_step_key(order_id, "capture"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=authorize_and_capture) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert reads.count == 1


def test_a_refused_key_is_read_again_on_the_next_call(
        stack: Stack, reads: SecretReads, secret_arn: str, provider: PaymentsStandIn) -> None:
    sm = stack.client("secretsmanager")
    sm.put_secret_value(SecretId=secret_arn, SecretString="sk_test_not_the_right_one")
    payments = StripePayments(lambda: reads.client, secret_arn, api_url=provider.url)
    try:
        with pytest.raises(PaymentRefused, match="Invalid API Key"):
            _authorize(payments)
        sm.put_secret_value(SecretId=secret_arn, SecretString=provider.api_key)  # the operator fixes it

        _authorize(payments)
    finally:
        sm.put_secret_value(SecretId=secret_arn, SecretString=provider.api_key)

    assert reads.count == 2


def test_a_secret_that_does_not_exist_is_refused(stack: Stack, reads: SecretReads, provider: PaymentsStandIn) -> None:
    payments = StripePayments(lambda: reads.client, "storefront-dev/no-such-secret", api_url=provider.url)

    with pytest.raises(PaymentRefused, match="ResourceNotFoundException"):
        _authorize(payments)


def test_secrets_manager_out_of_reach_is_unavailable(provider: PaymentsStandIn) -> None:
    import boto3
    from botocore.config import Config

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{closed.getsockname()[1]}",
                                   region_name="us-east-1", aws_access_key_id="testing",
                                   aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))
        payments = StripePayments(lambda: unreachable, "any", api_url=provider.url)

        with pytest.raises(PaymentProviderUnavailable, match="API key could not be read"):
            _authorize(payments)
