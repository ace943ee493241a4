"""The local stack as a user meets it: `make run`, curl with a token, the AWS CLI, the traces."""

from __future__ import annotations

import json
import socket
import time
import uuid

import boto3
import pytest
import requests

from tests.e2e.conftest import start_stack, stop_stack

pytestmark = pytest.mark.timeout(180)


def _auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def test_endpoints_file_describes_every_resource(stack):
    e = stack.endpoints
    assert set(e) >= {"api", "aws_endpoint", "region", "trace_viewer", "user_pool_id", "user_pool_client_id",
                      "buckets", "tables", "queues", "topics", "mailbox"}
    assert set(e["buckets"]) == {"uploads", "media", "imports"}
    assert {"ProductsTable", "IdempotencyTable"} <= set(e["tables"])
    assert {"OrdersQueue", "OrdersQueueDeadLetterQueue"} <= set(e["queues"])
    assert e["mailbox"] == f"{e['trace_viewer']}/mail"
    assert isinstance(requests.get(e["mailbox"], timeout=10).json(), list)


def test_health_answers_with_a_request_id(stack):
    response = requests.get(f"{stack.endpoints['api']}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["X-Request-Id"]


def test_a_product_made_over_http_is_seen_by_the_aws_cli(stack):
    token = stack.token(f"alice-{uuid.uuid4().hex[:8]}")
    api = stack.endpoints["api"]
    created = requests.post(f"{api}/products", headers=_auth(token), timeout=10,
                            json={"name": "Mug", "price_cents": 1200, "currency": "EUR", "stock": 5})
    assert created.status_code == 201, created.text
    product = created.json()

    table = stack.endpoints["tables"]["ProductsTable"]
    item = stack.aws("dynamodb", "get-item", "--table-name", table,
                     "--key", json.dumps({"id": {"S": product["id"]}}))["Item"]
    assert item["name"] == {"S": "Mug"}
    queues = stack.aws("sqs", "list-queues")["QueueUrls"]
    assert set(stack.endpoints["queues"].values()) <= set(queues)
    buckets = {b["Name"] for b in stack.aws("s3api", "list-buckets")["Buckets"]}
    assert set(stack.endpoints["buckets"].values()) <= buckets


def test_the_curl_walk_through_of_the_readme(stack):
    api = stack.endpoints["api"]
    token = stack.token(f"bob-{uuid.uuid4().hex[:8]}")
    product = requests.post(f"{api}/products", headers=_auth(token, **{"Idempotency-Key": "first-mug"}), timeout=10,
                            json={"name": "Mug", "price_cents": 1200, "currency": "EUR", "stock": 5}).json()
    again = requests.post(f"{api}/products", headers=_auth(token, **{"Idempotency-Key": "first-mug"}), timeout=10,
                          json={"name": "Mug", "price_cents": 1200, "currency": "EUR", "stock": 5})
    assert again.status_code == 201 and again.json() == product

    url = f"{api}/products/{product['id']}"
    assert requests.patch(url, headers=_auth(token), json={"stock": 4}, timeout=10).status_code == 428
    patched = requests.patch(url, headers=_auth(token, **{"If-Match": '"1"'}), json={"stock": 4}, timeout=10)
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert requests.patch(url, headers=_auth(token, **{"If-Match": '"1"'}), json={"stock": 3},
                          timeout=10).status_code == 412
    mine = requests.get(f"{api}/products", params={"owner": product["owner"]}, timeout=10).json()
    assert [p["id"] for p in mine["items"]] == [product["id"]]
    assert requests.delete(url, headers=_auth(token), timeout=10).status_code == 204
    assert requests.get(url, timeout=10).status_code == 404


def test_requests_are_traced_into_the_xray_api_with_annotations(stack):
    api = stack.endpoints["api"]
    token = stack.token(f"carol-{uuid.uuid4().hex[:8]}")
    created = requests.post(f"{api}/products", headers=_auth(token), timeout=10,
                            json={"name": "Lamp", "price_cents": 5000, "currency": "EUR", "stock": 1})
    product = created.json()
    trace_header = created.headers["X-Amzn-Trace-Id"]
    assert trace_header.startswith("Root=1-")
    trace_id = trace_header.split("=", 1)[1]

    xray = boto3.client("xray", endpoint_url=stack.endpoints["aws_endpoint"], region_name=stack.endpoints["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    deadline = time.monotonic() + 20
    documents: list[dict] = []
    # The function's segment and the app's subsegments travel as separate documents.
    while time.monotonic() < deadline and "PutItem" not in json.dumps(documents):
        traces = xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
        documents = [json.loads(s["Document"]) for t in traces for s in t["Segments"]]
        time.sleep(0.3)
    assert documents, "the request's trace never reached the X-Ray API"
    text = json.dumps(documents)
    assert product["id"] in text and product["owner"] in text  # the annotations
    assert "PutItem" in text  # the DynamoDB call is a subsegment of the request

    page = requests.get(stack.endpoints["trace_viewer"], timeout=10)
    assert page.status_code == 200 and trace_id in page.text


def _port_is_free(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.socket() as s:
        # As the stack binds on start: a closed connection's TIME_WAIT must not count as "held".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def test_sigterm_stops_cleanly_removing_the_file_and_freeing_ports(tmp_path):
    running = start_stack(tmp_path)
    endpoints = running.endpoints
    assert stop_stack(running) == 0
    assert not (running.state_dir / "endpoints.json").exists()
    for key in ("api", "aws_endpoint", "trace_viewer"):
        assert _port_is_free(endpoints[key]), f"{key} port still held"


def test_the_payments_stand_in_is_reached_with_the_key_in_the_stacks_secret(stack):
    e = stack.endpoints
    (arn,) = [s["ARN"] for s in stack.aws("secretsmanager", "list-secrets")["SecretList"]
              if s["Name"].endswith("/payments-api-key")]
    key = stack.aws("secretsmanager", "get-secret-value", "--secret-id", arn)["SecretString"]

    listed = requests.get(f"{e['payments']}/v1/payment_intents", headers=_auth(key), timeout=10)
    refused = requests.get(f"{e['payments']}/v1/payment_intents", headers=_auth("sk_test_wrong"), timeout=10)

    assert listed.status_code == 200
    assert listed.json()["object"] == "list"
    assert refused.status_code == 401
