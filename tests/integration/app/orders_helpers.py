"""What the order tests share: placing orders over HTTP, the real OrdersQueue, Lambda's SQS event,
and a view of (and a hand on) the DynamoDB requests the app sends."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from pynamodb.signals import pre_dynamodb_send

from tests.integration.app.helpers import PRODUCT, User, body_of, create

__all__ = ["new_product", "place", "stock_of", "read_order", "OrdersQueue", "DynamoDBWire"]


def new_product(api: Any, seller: User, stock: int) -> str:
    response = create(api, seller, {**PRODUCT, "stock": stock})
    assert response.status_code == 201, response.body
    return body_of(response)["id"]


def place(api: Any, buyer: User, product_id: str, quantity: int = 1, **headers: str) -> Any:
    return api.post("/orders", headers=buyer.headers(**headers),
                    body=json.dumps({"product_id": product_id, "quantity": quantity}))


def stock_of(api: Any, product_id: str) -> int:
    return body_of(api.get(f"/products/{product_id}"))["stock"]


def read_order(api: Any, buyer: User, order_id: str) -> dict[str, Any]:
    response = api.get(f"/orders/{order_id}", headers=buyer.headers())
    assert response.status_code == 200, response.body
    return body_of(response)


class OrdersQueue:
    """The real OrdersQueue, read as Lambda's event source mapping reads it."""

    def __init__(self, sqs: Any, url: str, region: str) -> None:
        self.sqs = sqs
        self.url = url
        self.region = region
        self._received: list[dict[str, Any]] = []
        self.arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def drain(self) -> None:
        """Delete whatever is visible, so a test sees only its own messages (PurgeQueue is
        allowed once a minute)."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return
            self.delete(messages)

    def forget_received(self) -> None:
        """Delete what this test received, so nothing comes back into a later test."""
        self.delete(self._received)
        self._received.clear()

    def receive(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Exactly `count` messages (fails when fewer arrive, or more are there)."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            messages += self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(10, count - len(messages)), WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        self._received += messages
        assert len(messages) == count, f"expected {count} messages on the orders queue, got {len(messages)}"
        assert self.is_empty(), "more messages than expected on the orders queue"
        return messages

    def is_empty(self) -> bool:
        return not self.sqs.receive_message(QueueUrl=self.url, WaitTimeSeconds=0).get("Messages")

    def send(self, body: str) -> str:
        return self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"]

    def make_visible(self, messages: list[dict[str, Any]]) -> None:
        """What SQS does when a record's visibility timeout ends: the message comes back."""
        for message in messages:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"],
                                               VisibilityTimeout=0)

    def delete(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            try:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            except self.sqs.exceptions.ReceiptHandleIsInvalid:
                pass  # already deleted

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Lambda's SQS event for `messages`, as the event source mapping builds it."""
        records = []
        for message in messages:
            attributes = message.get("Attributes", {})
            records.append({
                "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"], "md5OfBody": message["MD5OfBody"],
                "attributes": {k: v for k, v in attributes.items() if k in (
                    "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
                    "AWSTraceHeader")},
                "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": self.arn,
                "awsRegion": self.region,
            })
        return {"Records": records}


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
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._registered: list[tuple[Any, str, Callable[..., Any]]] = []
        self._failures: list[tuple[str, str, Callable[[dict[str, Any]], bool], list[str] | None]] = []

    def fail(self, operation: str, code: str, when: Callable[[dict[str, Any]], bool] = lambda body: True,
             *, reasons: list[str] | None = None) -> None:
        """From now on, answer `operation` requests whose JSON body satisfies `when` with error
        `code` (a cancelled transaction's `reasons` as DynamoDB lists them: "None", "TransactionConflict", ...)."""
        self._failures.append((operation, code, when, reasons))

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

    def _count(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self.calls[event_name.rsplit(".", 1)[-1]] += 1

    def _answer(self, event_name: str, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
        operation = event_name.rsplit(".", 1)[-1]
        body = params.get("body") or b"{}"
        request = json.loads(body.decode() if isinstance(body, bytes) else body)
        for failing, code, when, reasons in list(self._failures):
            if failing == operation and when(request):
                parsed: dict[str, Any] = {"Error": {"Code": code, "Message": "injected by the test"},
                                          "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}}}
                if reasons is not None:
                    parsed["CancellationReasons"] = [{"Code": reason} for reason in reasons]
                return AWSResponse("http://dynamodb.invalid", 400, {}, None), parsed
        return None
