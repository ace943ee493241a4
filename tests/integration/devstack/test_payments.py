"""The stand-in payment provider (devstack/payments.py) over HTTP, as Stripe's clients see it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3

from devstack.payments import PaymentsStandIn

pytestmark = pytest.mark.timeout(60)

KEY = "sk_test_for_these_tests"


@pytest.fixture
def provider() -> Iterator[PaymentsStandIn]:
    stand_in = PaymentsStandIn(api_key=KEY).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


class Answer:
    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body: Any = json.loads(response.data)

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.body["error"]
        return error


def call(provider: PaymentsStandIn, method: str, path: str, params: dict[str, Any] | None = None, *,
         key: str | None = None, auth: str | None = f"Bearer {KEY}", body: bytes | None = None) -> Answer:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth is not None:
        headers["Authorization"] = auth
    if key is not None:
        headers["Idempotency-Key"] = key
    if body is None and params is not None:
        body = urlencode(params).encode()
    return Answer(urllib3.request(method, provider.url + path, body=body, headers=headers, retries=False))


def create(provider: PaymentsStandIn, token: str = "pm_card_visa", *, order_id: str = "ord-1", amount: int = 1000,
           key: str | None = None, **extra: Any) -> Answer:
    params = {"amount": amount, "currency": "eur", "payment_method": token, "confirm": "true",
              "capture_method": "manual", "metadata[order_id]": order_id, **extra}
    return call(provider, "POST", "/v1/payment_intents", params, key=key)


# --- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer sk_test_someone_elses", f"Basic {KEY}"])
def test_a_call_without_the_stand_ins_key_is_a_401_in_stripes_shape(provider, auth) -> None:
    answer = call(provider, "GET", "/v1/payment_intents", auth=auth)

    assert answer.status == 401
    assert answer.error["type"] == "invalid_request_error"


# --- create ------------------------------------------------------------------------------------


def test_an_approved_card_gives_an_intent_awaiting_capture(provider) -> None:
    answer = create(provider, amount=1999, order_id="ord-approved")

    intent = answer.body
    assert answer.status == 200
    assert intent["object"] == "payment_intent" and intent["id"].startswith("pi_")
    assert (intent["status"], intent["amount"], intent["amount_capturable"], intent["amount_received"]) == (
        "requires_capture", 1999, 1999, 0)
    assert intent["metadata"] == {"order_id": "ord-approved"}
    assert intent["payment_method"].startswith("pm_") and intent["payment_method"] != "pm_card_visa"


def test_automatic_capture_succeeds_at_once(provider) -> None:
    assert create(provider, capture_method="automatic").body["status"] == "succeeded"


@pytest.mark.parametrize("token, decline_code", [
    ("pm_card_chargeDeclined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
])
def test_a_declined_card_is_a_402_card_error_and_the_intent_is_kept(provider, token, decline_code) -> None:
    answer = create(provider, token, order_id="ord-declined")

    assert answer.status == 402
    assert (answer.error["type"], answer.error["code"], answer.error["decline_code"]) == (
        "card_error", "card_declined", decline_code)
    intent = call(provider, "GET", f"/v1/payment_intents/{answer.error['payment_intent']['id']}").body
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline_code


def test_the_unavailable_card_gets_a_503_every_time_even_with_the_same_key(provider) -> None:
    answers = [create(provider, "pm_card_unavailable", key="same") for _ in range(3)]

    assert [a.status for a in answers] == [503, 503, 503]
    assert call(provider, "GET", "/v1/payment_intents").body["data"] == []


def test_an_unknown_token_is_a_400_resource_missing(provider) -> None:
    answer = create(provider, "pm_card_nonsense")

    assert answer.status == 400
    assert (answer.error["code"], answer.error["param"]) == ("resource_missing", "payment_method")


@pytest.mark.parametrize("params, code, param", [
    ({"amount": None}, "parameter_missing", "amount"),
    ({"amount": "ten"}, "parameter_invalid_integer", "amount"),
    ({"amount": 0}, "parameter_invalid_integer", "amount"),
    ({"amount": 10**9}, "parameter_invalid_integer", "amount"),
    ({"currency": "euro"}, "parameter_invalid", "currency"),
    ({"confirm": None}, "parameter_invalid", "confirm"),
    ({"capture_method": "later"}, "parameter_invalid", "capture_method"),
    ({"metadata[order_id]": None}, "parameter_missing", "metadata[order_id]"),
    ({"payment_method_types[]": "sepa_debit"}, "parameter_invalid", "payment_method_types"),
    ({"colour": "red"}, "parameter_unknown", "colour"),
    ({"metadata[a][b]": "x"}, "parameter_invalid", "metadata[a][b]"),
])
def test_bad_parameters_are_a_400_naming_the_parameter(provider, params, code, param) -> None:
    base = {"amount": 1000, "currency": "eur", "payment_method": "pm_card_visa", "confirm": "true",
            "capture_method": "manual", "metadata[order_id]": "ord-1"}
    sent = {k: v for k, v in {**base, **params}.items() if v is not None}

    answer = call(provider, "POST", "/v1/payment_intents", sent)

    assert answer.status == 400
    assert (answer.error["code"], answer.error["param"]) == (code, param)


@pytest.mark.parametrize("body", [b"\xff\xfe", b"a=1&&&=", b"%%%"])
def test_a_body_that_is_not_a_form_is_a_400(provider, body) -> None:
    answer = call(provider, "POST", "/v1/payment_intents", body=body)

    assert answer.status == 400
    assert "error" in answer.body


def test_an_unknown_path_is_a_404_in_stripes_shape(provider) -> None:
    answer = call(provider, "POST", "/v1/charges", {"amount": 1})

    assert answer.status == 404
    assert "Unrecognized request URL" in answer.error["message"]


# --- capture, cancel, refund -------------------------------------------------------------------


def test_capture_then_refund(provider) -> None:
    intent = create(provider, amount=700).body

    captured = call(provider, "POST", f"/v1/payment_intents/{intent['id']}/capture")
    refund = call(provider, "POST", "/v1/refunds", {"payment_intent": intent["id"]})

    assert (captured.status, captured.body["status"], captured.body["amount_received"]) == (200, "succeeded", 700)
    assert (refund.status, refund.body["object"], refund.body["amount"], refund.body["status"]) == (
        200, "refund", 700, "succeeded")
    assert call(provider, "GET", f"/v1/refunds/{refund.body['id']}").body == refund.body


def test_cancel_releases_an_authorization(provider) -> None:
    intent = create(provider).body

    canceled = call(provider, "POST", f"/v1/payment_intents/{intent['id']}/cancel",
                    {"cancellation_reason": "abandoned"})

    assert (canceled.body["status"], canceled.body["cancellation_reason"]) == ("canceled", "abandoned")
    assert canceled.body["canceled_at"] is not None


@pytest.mark.parametrize("first, then, message", [
    ("capture", "capture", "could not be captured because it has a status of succeeded"),
    ("cancel", "cancel", "You cannot cancel this PaymentIntent because it has a status of canceled"),
    ("capture", "cancel", "You cannot cancel this PaymentIntent because it has a status of succeeded"),
    ("cancel", "capture", "could not be captured because it has a status of canceled"),
])
def test_a_move_the_intents_status_does_not_allow_is_a_400_unexpected_state_with_the_intent(
        provider, first, then, message) -> None:
    intent = create(provider).body
    call(provider, "POST", f"/v1/payment_intents/{intent['id']}/{first}")

    answer = call(provider, "POST", f"/v1/payment_intents/{intent['id']}/{then}")

    assert answer.status == 400
    assert answer.error["code"] == "payment_intent_unexpected_state"
    assert message in answer.error["message"]
    assert answer.error["payment_intent"]["id"] == intent["id"]


def test_only_a_succeeded_intent_is_refunded_and_only_once(provider) -> None:
    intent = create(provider).body

    uncaptured = call(provider, "POST", "/v1/refunds", {"payment_intent": intent["id"]})
    call(provider, "POST", f"/v1/payment_intents/{intent['id']}/capture")
    first = call(provider, "POST", "/v1/refunds", {"payment_intent": intent["id"]})
    second = call(provider, "POST", "/v1/refunds", {"payment_intent": intent["id"]})

    assert (uncaptured.status, uncaptured.error["code"]) == (400, "payment_intent_unexpected_state")
    assert first.status == 200
    assert (second.status, second.error["code"]) == (400, "charge_already_refunded")


def test_an_unknown_intent_is_a_404_resource_missing(provider) -> None:
    for answer in (call(provider, "POST", "/v1/payment_intents/pi_nope/capture"),
                   call(provider, "GET", "/v1/payment_intents/pi_nope")):
        assert (answer.status, answer.error["code"]) == (404, "resource_missing")
    refund = call(provider, "POST", "/v1/refunds", {"payment_intent": "pi_nope"})
    assert (refund.status, refund.error["code"]) == (400, "resource_missing")


# --- idempotency -------------------------------------------------------------------------------


def test_the_same_key_and_request_answer_the_first_answer_again_marked_replayed(provider) -> None:
    first = create(provider, key="k-1")
    again = create(provider, key="k-1")

    assert again.body == first.body
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(call(provider, "GET", "/v1/payment_intents").body["data"]) == 1


def test_a_decline_is_replayed_too(provider) -> None:
    first = create(provider, "pm_card_chargeDeclined", key="k-decline")
    again = create(provider, "pm_card_chargeDeclined", key="k-decline")

    assert (again.status, again.body, again.headers["Idempotent-Replayed"]) == (402, first.body, "true")


@pytest.mark.parametrize("second", [
    lambda p: create(p, amount=2000, key="k-2"),
    lambda p: call(p, "POST", "/v1/refunds", {"payment_intent": "pi_x"}, key="k-2"),
])
def test_the_same_key_with_another_request_is_a_400_idempotency_error(provider, second) -> None:
    create(provider, amount=1000, key="k-2")

    answer = second(provider)

    assert (answer.status, answer.error["type"]) == (400, "idempotency_error")


def test_a_request_refused_before_it_ran_does_not_use_up_its_key(provider) -> None:
    refused = create(provider, amount="ten", key="k-3")
    accepted = create(provider, amount=10, key="k-3")

    assert (refused.status, accepted.status) == (400, 200)


def test_concurrent_requests_with_one_key_make_one_intent(provider) -> None:
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(create(provider, key="k-race", order_id="ord-race")))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len({a.body["id"] for a in answers}) == 1
    assert len(call(provider, "GET", "/v1/payment_intents").body["data"]) == 1


# --- lists -------------------------------------------------------------------------------------


def test_intents_are_listed_newest_first_in_pages(provider) -> None:
    ids = [create(provider, order_id=f"ord-{n}").body["id"] for n in range(5)]

    first = call(provider, "GET", "/v1/payment_intents?limit=2").body
    rest = call(provider, "GET", f"/v1/payment_intents?limit=10&starting_after={first['data'][-1]['id']}").body

    assert (first["object"], first["url"], first["has_more"]) == ("list", "/v1/payment_intents", True)
    assert [i["id"] for i in first["data"] + rest["data"]] == ids[::-1]
    assert rest["has_more"] is False
    assert [i["metadata"]["order_id"] for i in rest["data"]] == ["ord-2", "ord-1", "ord-0"]


@pytest.mark.parametrize("query, param", [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                                          ("starting_after=pi_nope", "starting_after"), ("status=succeeded", "status")])
def test_bad_list_parameters_are_a_400(provider, query, param) -> None:
    answer = call(provider, "GET", f"/v1/payment_intents?{query}")

    assert (answer.status, answer.error["param"]) == (400, param)


def test_refunds_are_listed_and_filtered_by_intent(provider) -> None:
    intents = [create(provider, capture_method="automatic").body["id"] for _ in range(2)]
    for intent in intents:
        call(provider, "POST", "/v1/refunds", {"payment_intent": intent})

    everything = call(provider, "GET", "/v1/refunds").body["data"]
    one = call(provider, "GET", f"/v1/refunds?payment_intent={intents[0]}").body["data"]

    assert [r["payment_intent"] for r in everything] == intents[::-1]
    assert [r["payment_intent"] for r in one] == [intents[0]]


# --- the stand-in's own controls ---------------------------------------------------------------


def test_calls_are_counted_per_order_replays_and_failures_included(provider) -> None:
    intent = create(provider, order_id="ord-count", key="a").body
    create(provider, order_id="ord-count", key="a")
    call(provider, "POST", f"/v1/payment_intents/{intent['id']}/capture", key="c")
    create(provider, "pm_card_unavailable", order_id="ord-down")
    call(provider, "POST", "/v1/refunds", {"payment_intent": "pi_nope"})

    calls = urllib3.request("GET", provider.url + "/_devstack/calls").json()

    assert calls["orders"]["ord-count"] == {"create": 2, "capture": 1, "total": 3}
    assert calls["orders"]["ord-down"] == {"create": 1, "total": 1}
    assert (calls["unattributed"], calls["total"]) == (1, 5)


def test_injected_faults_answer_503_to_the_next_calls_and_keep_nothing(provider) -> None:
    set_faults = urllib3.request("POST", provider.url + "/_devstack/faults", json={"unavailable_next": 2})

    answers = [create(provider, key="k-fault").status for _ in range(3)]

    assert set_faults.json() == {"unavailable_next": 2}
    assert answers == [503, 503, 200]
    assert urllib3.request("GET", provider.url + "/_devstack/faults").json() == {"unavailable_next": 0}


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"unavailable_next": -1}', b'{"unavailable_next": "2"}',
                                  b'{"unavailable_next": true}', b'{"slow": 1}'])
def test_a_bad_fault_request_is_a_400(provider, body) -> None:
    answer = urllib3.request("POST", provider.url + "/_devstack/faults", body=body)

    assert answer.status == 400
    assert "unavailable_next" in answer.json()["error"]["message"]
