"""What the image tests share: requesting uploads, posting files through the presigned form, the
real ImageUploadsQueue read as Lambda reads it, and S3 failures injected through botocore's hooks."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from typing import Any, Iterator

import requests
from botocore.awsrequest import AWSResponse
from pynamodb.signals import pre_dynamodb_send

from tests.integration.app.helpers import PRODUCT, User, body_of, create
from tests.support.sqs import LambdaQueue

__all__ = ["new_product", "request_upload", "post_file", "images_of", "policy_of", "ImageUploadsQueue",
           "failing_s3", "conflicting_transactions"]


def new_product(api: Any, owner: User) -> str:
    response = create(api, owner, PRODUCT)
    assert response.status_code == 201, response.body
    return body_of(response)["id"]


def request_upload(api: Any, user: User, product_id: str, content_type: str, size_bytes: int) -> Any:
    return api.post(f"/products/{product_id}/images", headers=user.headers(),
                    body=json.dumps({"content_type": content_type, "size_bytes": size_bytes}))


def post_file(ticket: dict[str, Any], data: bytes, content_type: str) -> requests.Response:
    """POST the file through the presigned form, as a browser's multipart form would."""
    upload = ticket["upload"]
    return requests.post(upload["url"], data=upload["fields"], files={"file": ("upload", data, content_type)},
                         timeout=30)


def images_of(api: Any, product_id: str) -> dict[str, dict[str, Any]]:
    """The product's images by id, as GET /products/{id} shows them."""
    response = api.get(f"/products/{product_id}")
    assert response.status_code == 200, response.body
    return {image["id"]: image for image in body_of(response)["images"]}


def policy_of(ticket: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(ticket["upload"]["fields"]["policy"]))


class ImageUploadsQueue(LambdaQueue):
    """The real ImageUploadsQueue (fed by the uploads bucket's notifications)."""

    def receive(self, count: int, timeout: float = 10, skip: Any = None) -> list[dict[str, Any]]:
        """`count` upload notifications, skipping (and deleting) S3's s3:TestEvent."""
        return super().receive(count, timeout, skip=lambda message: "s3:TestEvent" in message["Body"])


@contextmanager
def failing_s3(client: Any, operation: str, key_contains: str, code: str = "SlowDown",
               status: int = 503) -> Iterator[None]:
    """Answer `operation` on this S3 client with an S3 error for keys containing `key_contains`,
    through botocore's public event hooks (a before-call handler answers in S3's place, above
    botocore's retries: the app sees the error at once)."""

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if key_contains not in params.get("url_path", ""):
            return None
        parsed = {"Error": {"Code": code, "Message": "injected by the test"},
                  "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
        return AWSResponse("https://s3.invalid", status, {}, None), parsed

    name = f"before-call.s3.{operation}"
    client.meta.events.register(name, answer)
    try:
        yield
    finally:
        client.meta.events.unregister(name, answer)


@contextmanager
def conflicting_transactions(times: int) -> Iterator[list[str]]:
    """Cancel the app's next `times` TransactWriteItems as DynamoDB does when another transaction
    holds one of the items ("TransactionConflict"); yields the outcomes, one per transaction seen.

    pynamodb's public pre_dynamodb_send signal names the connection about to call; a handler on
    its botocore client's before-call event answers in DynamoDB's place.
    """
    outcomes: list[str] = []
    clients: list[Any] = []

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if len([o for o in outcomes if o == "conflict"]) >= times:
            outcomes.append("sent")
            return None
        outcomes.append("conflict")
        parsed = {"Error": {"Code": "TransactionCanceledException", "Message": "injected by the test"},
                  "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                  "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}}}
        return AWSResponse("https://dynamodb.invalid", 400, {}, None), parsed

    def on_send(connection: Any, operation_name: str, **_: Any) -> None:
        client = connection.client
        if operation_name == "TransactWriteItems" and client not in clients:
            clients.append(client)
            client.meta.events.register_first("before-call.dynamodb.TransactWriteItems", answer)

    pre_dynamodb_send.connect(on_send, weak=False)
    try:
        yield outcomes
    finally:
        pre_dynamodb_send.disconnect(on_send)
        for client in clients:
            client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", answer)
