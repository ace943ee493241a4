"""POST /orders and GET /orders/{id} through the real app against moto: accept fast, refuse clearly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from chalicelib.adapters.tracing import XRayTracer, parse_trace_header
from tests.integration.app.helpers import body_of
from tests.integration.app.orders_helpers import VISA, OrdersQueue, new_product, place, read_order
from tests.support.app_wiring import app_aws, install_app

pytestmark = pytest.mark.timeout(60)

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def sqs_calls() -> Iterator[list[dict[str, Any]]]:
    """The parameters of every SQS call the app makes (on the container's one SQS client)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append({"operation": model.name, **params})

    events = app_aws().sqs.meta.events
    events.register("provide-client-params.sqs", record)
    try:
        yield calls
    finally:
        events.unregister("provide-client-params.sqs", record)


def buyers_orders(stack, buyer) -> list[dict[str, Any]]:
    """Every order recorded for `buyer`, read straight from the table."""
    return stack.client("dynamodb").query(
        TableName=stack.provisioned.env()["ORDERS_TABLE"], IndexName="buyer-index",
        KeyConditionExpression="buyer = :b", ExpressionAttributeValues={":b": {"S": buyer.sub}})["Items"]


# Accepting


def test_an_order_is_accepted_with_202_its_location_and_status_queued(api, alice, bob, orders_queue):
    product_id = new_product(api, alice, stock=5)

    response = place(api, bob, product_id, 2)

    assert response.status_code == 202, response.body
    body = body_of(response)
    assert body == {"order_id": body["order_id"], "status": "queued"}
    assert response.headers["Location"] == f"/orders/{body['order_id']}"
    assert "Idempotent-Replayed" not in response.headers
    order = read_order(api, bob, body["order_id"])
    # No amount yet (the consumer fixes it when it reserves the stock) and no payment.
    assert order == {"order_id": body["order_id"], "product_id": product_id, "quantity": 2, "status": "queued",
                     "amount_cents": None, "currency": None, "payment": {"status": "none"},
                     "history": [{"status": "queued", "at": order["created_at"]}],
                     "created_at": order["created_at"], "updated_at": order["created_at"]}
    (message,) = orders_queue.receive(1)
    assert json.loads(message["Body"]) == {"type": "OrderPlaced", "version": 1, "order_id": body["order_id"],
                                           "buyer": bob.sub, "product_id": product_id, "quantity": 2}


def test_an_order_for_an_unknown_product_is_still_accepted_the_consumer_decides(api, bob, orders_queue):
    response = place(api, bob, UNKNOWN_ID)

    assert response.status_code == 202
    orders_queue.receive(1)


def test_accepting_an_order_is_one_write_and_one_message(api, alice, bob, orders_queue, aws_calls, sqs_calls):
    product_id = new_product(api, alice, stock=5)
    aws_calls.clear()

    assert place(api, bob, product_id).status_code == 202

    assert aws_calls == {"PutItem": 1}  # the product is not even read: the consumer decides
    assert [call["operation"] for call in sqs_calls] == ["SendMessage"]


@pytest.mark.parametrize("body, field", [
    ({"quantity": 1, "payment_method": VISA}, "product_id"),
    ({"product_id": "not-a-product-id", "quantity": 1, "payment_method": VISA}, "product_id"),
    ({"product_id": UNKNOWN_ID, "quantity": 0, "payment_method": VISA}, "quantity"),
    ({"product_id": UNKNOWN_ID, "quantity": 101, "payment_method": VISA}, "quantity"),
    ({"product_id": UNKNOWN_ID, "quantity": "1", "payment_method": VISA}, "quantity"),
    ({"product_id": UNKNOWN_ID, "quantity": True, "payment_method": VISA}, "quantity"),
    ({"product_id": UNKNOWN_ID, "quantity": 1.5, "payment_method": VISA}, "quantity"),
    ({"product_id": UNKNOWN_ID, "payment_method": VISA}, "quantity"),
    ({"product_id": UNKNOWN_ID, "quantity": 1}, "payment_method"),
    ({"product_id": UNKNOWN_ID, "quantity": 1, "payment_method": "4242424242424242"}, "payment_method"),
    ({"product_id": UNKNOWN_ID, "quantity": 1, "payment_method": "pm_" + "x" * 121}, "payment_method"),
    ({"product_id": UNKNOWN_ID, "quantity": 1, "payment_method": ["pm_card_visa"]}, "payment_method"),
    ({"product_id": UNKNOWN_ID, "quantity": 1, "payment_method": VISA, "price_cents": 1}, "price_cents"),
    ([UNKNOWN_ID, 1], "body"),
])
def test_a_bad_order_is_a_400_naming_the_field_and_nothing_is_recorded_or_sent(
        api, bob, body, field, aws_calls, sqs_calls):
    response = api.post("/orders", headers=bob.headers(), body=json.dumps(body))

    assert response.status_code == 400
    error = body_of(response)
    assert error["Code"] == "BadRequestError" and error["Message"].startswith(f"{field}: ")
    assert aws_calls == {} and sqs_calls == []


@pytest.mark.parametrize("raw", ['{"product_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "quantity": 1', "", "null",
                                 '{"product_id": "' + "x" * 2000 + '", "quantity": 1}'])
def test_a_body_that_is_not_a_json_object_or_too_large_is_a_400_naming_the_body(api, bob, raw):
    response = api.post("/orders", headers=bob.headers(), body=raw)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("body: ")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic Ym9i"}])
def test_placing_an_order_needs_a_valid_token(api, headers, sqs_calls):
    response = api.post("/orders", headers={"Content-Type": "application/json", **headers},
                        body=json.dumps({"product_id": UNKNOWN_ID, "quantity": 1, "payment_method": VISA}))

    assert response.status_code == 401
    assert body_of(response)["Code"] == "UnauthorizedError"
    assert sqs_calls == []


# Idempotency


def test_the_same_key_and_body_answer_the_same_order_again(api, stack, alice, bob, orders_queue):
    product_id = new_product(api, alice, stock=5)
    first = place(api, bob, product_id, **{"Idempotency-Key": "order-1"})

    again = place(api, bob, product_id, **{"Idempotency-Key": "order-1"})

    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert body_of(again) == body_of(first)
    assert again.headers["Location"] == first.headers["Location"]
    assert len(buyers_orders(stack, bob)) == 1
    messages = orders_queue.receive(2)  # still queued, so the replay sends it again: applied once
    assert {json.loads(m["Body"])["order_id"] for m in messages} == {body_of(first)["order_id"]}


def test_the_same_key_with_another_body_is_a_409_and_places_nothing(api, stack, alice, bob, orders_queue):
    product_id = new_product(api, alice, stock=5)
    place(api, bob, product_id, 1, **{"Idempotency-Key": "order-1"})
    orders_queue.receive(1)

    response = place(api, bob, product_id, 2, **{"Idempotency-Key": "order-1"})

    assert response.status_code == 409
    assert body_of(response)["Code"] == "ConflictError"
    assert len(buyers_orders(stack, bob)) == 1
    assert orders_queue.is_empty()


def test_a_malformed_idempotency_key_is_a_400(api, bob):
    response = place(api, bob, UNKNOWN_ID, **{"Idempotency-Key": "has space"})

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("Idempotency-Key: ")


# When SQS fails


def _sqs_answers(code: str, status: int) -> Any:
    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("http://sqs.invalid", status, {}, None), {
            "Error": {"Code": code, "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}

    return answer


@pytest.fixture
def sqs_events() -> Iterator[Any]:
    """The app's SQS client's event system; handlers registered on it are removed afterwards."""
    events = app_aws().sqs.meta.events
    registered: list[tuple[str, Any]] = []

    class Events:
        def register(self, name: str, handler: Any) -> None:
            events.register(name, handler)
            registered.append((name, handler))

        def unregister(self, name: str, handler: Any) -> None:
            events.unregister(name, handler)

    try:
        yield Events()
    finally:
        for name, handler in registered:
            events.unregister(name, handler)


def test_when_sqs_refuses_the_order_is_a_503_and_nothing_is_left_behind(api, stack, alice, bob, sqs_events,
                                                                         orders_queue):
    product_id = new_product(api, alice, stock=5)
    sqs_events.register("before-call.sqs.SendMessage", _sqs_answers("ServiceUnavailable", 503))

    response = place(api, bob, product_id)

    assert response.status_code == 503
    assert body_of(response)["Code"] == "ServiceUnavailableError"
    assert buyers_orders(stack, bob) == []
    assert orders_queue.is_empty()


def test_when_sqs_refuses_an_order_with_a_key_the_retry_with_the_key_sends_it(api, stack, alice, bob, sqs_events,
                                                                              orders_queue):
    product_id = new_product(api, alice, stock=5)
    refuse = _sqs_answers("ServiceUnavailable", 503)
    sqs_events.register("before-call.sqs.SendMessage", refuse)
    assert place(api, bob, product_id, **{"Idempotency-Key": "k"}).status_code == 503
    sqs_events.unregister("before-call.sqs.SendMessage", refuse)

    retried = place(api, bob, product_id, **{"Idempotency-Key": "k"})

    assert retried.status_code == 202 and retried.headers["Idempotent-Replayed"] == "true"
    (recorded,) = buyers_orders(stack, bob)
    assert recorded["id"]["S"] == body_of(retried)["order_id"]
    (message,) = orders_queue.receive(1)
    assert json.loads(message["Body"])["order_id"] == body_of(retried)["order_id"]


def test_when_the_answer_of_sqs_is_lost_the_order_is_a_503_and_withdrawn(api, stack, alice, bob, sqs_events,
                                                                         orders_queue):
    product_id = new_product(api, alice, stock=5)

    def lose_the_answer(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url=orders_queue.url)

    sqs_events.register("after-call.sqs.SendMessage", lose_the_answer)

    response = place(api, bob, product_id)

    assert response.status_code == 503
    assert buyers_orders(stack, bob) == []
    orders_queue.receive(1)  # SQS has it: the consumer must ignore it (test_orders_consumer.py)


# Tracing


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app with X-Ray tracing on, in a segment Lambda opened and handed over in _X_AMZN_TRACE_ID
    (the SDK's UDP emitter sends to a daemon nobody runs)."""
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.lambda_launcher import LambdaContext

    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-6b046abd-00000000000000000000abcd;Parent=00000000000000f1;Sampled=1")
    previous = xray_recorder.context
    xray_recorder.configure(context=LambdaContext())  # what the SDK does when it finds LAMBDA_TASK_ROOT
    install_app(tracer=XRayTracer(service="storefront"))
    try:
        yield
    finally:
        install_app()
        xray_recorder.configure(context=previous)


def test_the_message_carries_the_trace_of_the_request_that_placed_the_order(api, alice, bob, orders_queue, traced):
    product_id = new_product(api, alice, stock=5)

    response = place(api, bob, product_id)

    assert response.status_code == 202
    request_trace = parse_trace_header(response.headers["X-Amzn-Trace-Id"])["Root"]
    (message,) = orders_queue.receive(1)
    header = parse_trace_header(message["Attributes"]["AWSTraceHeader"])
    assert header["Root"] == request_trace
    assert header["Parent"] and header["Sampled"] == "1"


def test_without_tracing_the_message_carries_no_trace_header(api, bob, orders_queue):
    assert place(api, bob, UNKNOWN_ID).status_code == 202

    (message,) = orders_queue.receive(1)
    assert "AWSTraceHeader" not in message["Attributes"]


# Reading


def test_the_buyer_reads_the_order_and_anyone_else_gets_403(api, alice, bob):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]

    assert read_order(api, bob, order_id)["status"] == "queued"
    response = api.get(f"/orders/{order_id}", headers=alice.headers())
    assert response.status_code == 403 and body_of(response)["Code"] == "ForbiddenError"


@pytest.mark.parametrize("order_id", [UNKNOWN_ID, "not-an-id"])
def test_an_unknown_order_is_404(api, bob, order_id):
    response = api.get(f"/orders/{order_id}", headers=bob.headers())

    assert response.status_code == 404 and body_of(response)["Code"] == "NotFoundError"


def test_reading_an_order_needs_a_token(api, alice, bob):
    order_id = body_of(place(api, bob, new_product(api, alice, stock=5)))["order_id"]

    assert api.get(f"/orders/{order_id}").status_code == 401
