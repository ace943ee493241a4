"""What the order tests share: placing orders over HTTP, the real OrdersQueue, Lambda's SQS event,
and a view of (and a hand on) the DynamoDB requests the app sends."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from pynamodb.signals import pre_dynamodb_send

from tests.integration.app.helpers import PRODUCT, User, body_of, create
from tests.support.sqs import LambdaQueue

__all__ = ["VISA", "new_product", "place", "stock_of", "read_order", "saga_step", "SAGA_FUNCTIONS",
           "saga_starts_unavailable", "executions_named", "OrdersQueue", "DynamoDBWire"]

VISA = "pm_card_visa"  # the stand-in provider's approved test card (API.md, Payments)


def new_product(api: Any, seller: User, stock: int) -> str:
    response = create(api, seller, {**PRODUCT, "stock": stock})
    assert response.status_code == 201, response.body
    return body_of(response)["id"]


def place(api: Any, buyer: User, product_id: str, quantity: int = 1, *, payment_method: str = VISA,
          **headers: str) -> Any:
    return api.post("/orders", headers=buyer.headers(**headers),
                    body=json.dumps({"product_id": product_id, "quantity": quantity, "payment_method": payment_method}))


def stock_of(api: Any, product_id: str) -> int:
    return body_of(api.get(f"/products/{product_id}"))["stock"]


def read_order(api: Any, buyer: User, order_id: str) -> dict[str, Any]:
    response = api.get(f"/orders/{order_id}", headers=buyer.headers())
    assert response.status_code == 200, response.body
    return body_of(response)


# Which Lambda function runs each step of infra/order_saga.asl.json (chalicelib/entrypoints/saga_steps.py).
SAGA_FUNCTIONS = {"authorize": "order_saga_payment", "capture": "order_saga_payment",
                  "release": "order_saga_payment", "confirm": "order_saga_order", "restock": "order_saga_order",
                  "end": "order_saga_order", "notify": "order_saga_notify"}


def saga_step(lambdas: Any, step: str, order_id: str, error: dict[str, str] | None = None) -> Any:
    """Invoke a saga step's function as the state machine's task does (its Payload), through
    chalice.test's Lambda client; the function's result, or its error raised."""
    payload: dict[str, Any] = {"step": step, "order_id": order_id,
                               "execution": f"arn:aws:states:us-east-1:123456789012:execution:OrderSaga:{order_id}"}
    if step == "end":
        payload["error"] = error  # the state machine passes `$.error`: null for a cancellation
    return lambdas.invoke(SAGA_FUNCTIONS[step], payload).payload


@contextmanager
def saga_starts_unavailable() -> Iterator[list[str]]:
    """The container's StartExecution calls answered as an unavailable Step Functions answers
    (after botocore's retries) for the block; yields the names of the executions refused."""
    from tests.support.app_wiring import app_aws

    sfn = app_aws().stepfunctions
    event_name = f"before-call.{sfn.meta.service_model.service_id.hyphenize()}.StartExecution"
    refused: list[str] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = params["body"]  # the serialised request
        refused.append(json.loads(body.decode() if isinstance(body, bytes) else body)["name"])
        return AWSResponse("http://states.invalid", 503, {}, None), {
            "Error": {"Code": "ServiceUnavailable", "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": 503, "HTTPHeaders": {}}}

    sfn.meta.events.register(event_name, answer)
    try:
        yield refused
    finally:
        sfn.meta.events.unregister(event_name, answer)


def executions_named(sfn: Any, state_machine_arn: str, name: str) -> list[dict[str, Any]]:
    """The executions of the state machine called `name` (an order's saga is named by the order;
    the test stack's moto records them and runs none)."""
    found: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn):
        found += [e for e in page["executions"] if e["name"] == name]
    return found


class OrdersQueue(LambdaQueue):
    """The real OrdersQueue; what a test received is deleted after it (`forget_received`)."""

    def __init__(self, sqs: Any, url: str, region: str) -> None:
        super().__init__(sqs, url, region)
        self._received: list[dict[str, Any]] = []

    def forget_received(self) -> None:
        """Delete what this test received, so nothing comes back into a later test."""
        self.delete(self._received)
        self._received.clear()

    def receive(self, count: int, timeout: float = 10, skip: Any = None) -> list[dict[str, Any]]:
        """Exactly `count` messages (fails when fewer arrive, or more are there)."""
        messages = super().receive(count, timeout)
        self._received += messages
        assert self.is_empty(), "more messages than expected on the orders queue"
        return messages


def failed_ids(response: dict[str, Any]) -> set[str]:
    """The message ids a consumer's partial batch response asks to have retried."""
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


class DynamoDBWire:
    """The DynamoDB requests the app sends while a test runs, and failures to inject into them.

    botocore has no process-wide hook: every pynamodb Connection makes its own botocore session
    and client, each with its own event system. pynamodb's public `pre_dynamodb_send` signal
    names the Connection about to call; the first time one is seen, handlers are registered on
    its client's event system (`client.meta.events`, botocore's public hook API), before the
    call is made. Nothing of the app is patched or reached into.

    - `before-send.dynamodb.*` runs once per HTTP request on the wire: `calls` counts what
      DynamoDB received (a retry inside botocore would count again).
    - `before-call.dynamodb.<Operation>` may answer in DynamoDB's place: a returned
      (http_response, parsed) makes botocore raise that error at once. botocore retries below
      this event (in its endpoint), so an injected failure reaches pynamodb on the first try.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (operation, JSON body) as sent
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._registered: list[tuple[Any, str, Callable[..., Any]]] = []
        self._failures: list[list[Any]] = []  # [operation, code, when, reasons, times left or None]

    def fail(self, operation: str, code: str, when: Callable[[dict[str, Any]], bool] = lambda body: True,
             *, reasons: list[str] | None = None, times: int | None = None) -> None:
        """From now on, answer `operation` requests whose JSON body satisfies `when` with error
        `code` (a cancelled transaction's `reasons` as DynamoDB lists them: "None", "TransactionConflict", ...);
        the first `times` such requests only, if given."""
        self._failures.append([operation, code, when, reasons, times])

    def heal(self) -> None:
        self._failures.clear()

    @contextmanager
    def watching(self) -> Iterator["DynamoDBWire"]:
        pre_dynamodb_send.connect(self._on_send, weak=False)
        try:
            yield self
        finally:
            pre_dynamodb_send.disconnect(self._on_send)
            for events, name, handler in self._registered:
                events.unregister(name, handler)

    def _on_send(self, connection: Any, **_: Any) -> None:
        with self._lock:
            if id(connection) in self._seen:
                return
            self._seen.add(id(connection))
            events = connection.client.meta.events
            for name, handler in (("before-send.dynamodb", self._count), ("before-call.dynamodb", self._answer)):
                events.register(name, handler)
                self._registered.append((events, name, handler))

    def _count(self, event_name: str, request: Any = None, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        body = getattr(request, "body", None) or b"{}"
        with self._lock:
            self.calls[operation] += 1
            self.requests.append((operation, json.loads(body.decode() if isinstance(body, bytes) else body)))

    def _answer(self, event_name: str, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
        operation = event_name.rsplit(".", 1)[-1]
        body = params.get("body") or b"{}"
        request = json.loads(body.decode() if isinstance(body, bytes) else body)
        for failure in list(self._failures):
            failing, code, when, reasons, left = failure
            if failing == operation and when(request) and left != 0:
                if left is not None:
                    failure[4] = left - 1
                parsed: dict[str, Any] = {"Error": {"Code": code, "Message": "injected by the test"},
                                          "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}}}
                if reasons is not None:
                    parsed["CancellationReasons"] = [{"Code": reason} for reason in reasons]
                return AWSResponse("http://dynamodb.invalid", 400, {}, None), parsed
        return None
