"""Imports against moto: the API, the real S3 notification, SNS fan-out and queues, the handlers
invoked as Lambda invokes them; duplicate deliveries, a worker dying mid-chunk, the last-two race."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.test import Client
from pynamodb.signals import pre_dynamodb_send

from chalicelib.config import load_settings
from chalicelib.domain.imports import product_id_for
from tests.integration.app.helpers import PRODUCT, User, body_of, create, products_of
from tests.integration.app.imports_helpers import Queue, TopicTap, failing_batch_writes, upload
from tests.support.app_wiring import install_app

pytestmark = pytest.mark.timeout(90)

HEADER = "name,description,price_cents,currency,stock\n"
CHUNK_ROWS = 3


def csv(*rows: str) -> bytes:
    return (HEADER + "".join(f"{r}\n" for r in rows)).encode()


def good(n: int) -> list[str]:
    return [f"Item {i},Imported,{100 + i},EUR,{i}" for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def small_chunks(stack) -> Iterator[None]:
    """The app as deployed, but cutting files into chunks of 3 rows, so a few rows make several."""
    install_app(dataclasses.replace(load_settings(), import_chunk_rows=CHUNK_ROWS))
    yield
    install_app()


@pytest.fixture(scope="module")
def invoke(stack) -> Iterator[Callable[[str, dict[str, Any]], dict[str, Any]]]:
    from app import app

    with Client(app) as client:
        yield lambda name, event: client.lambda_.invoke(name, event).payload


@pytest.fixture
def queues(stack) -> Iterator[tuple[Queue, Queue]]:
    env = stack.provisioned.env()
    uploads = Queue(stack.client("sqs"), env["IMPORT_UPLOADS_QUEUE"])
    chunks = Queue(stack.client("sqs"), env["IMPORT_CHUNKS_QUEUE"])
    uploads.drain()  # S3's test event, and anything an earlier test left
    chunks.drain()
    yield uploads, chunks
    uploads.drain()
    chunks.drain()


@pytest.fixture
def completed(stack) -> TopicTap:
    return TopicTap(stack.client("sns"), stack.client("sqs"), stack.provisioned.env()["IMPORT_COMPLETED_TOPIC"],
                    f"completed-{uuid.uuid4().hex[:8]}")


def start(api: Any, user: User, body: bytes) -> str:
    created = api.post("/imports", headers=user.headers())
    assert created.status_code == 201, created.body
    assert upload(body_of(created)["upload"], body).status_code == 204
    return body_of(created)["job_id"]


def dispatch(invoke: Callable, uploads: Queue) -> None:
    (notification,) = uploads.receive(1)
    assert invoke("dispatch_import", uploads.event([notification])) == {"batchItemFailures": []}
    uploads.delete([notification])


def job_of(api: Any, user: User, job_id: str) -> dict[str, Any]:
    response = api.get(f"/imports/{job_id}", headers=user.headers())
    assert response.status_code == 200, response.body
    return body_of(response)


# The API


def test_post_imports_answers_a_presigned_csv_form_for_the_callers_own_key(api, alice):
    response = api.post("/imports", headers=alice.headers())

    assert response.status_code == 201
    body = body_of(response)
    assert response.headers["Location"] == f"/imports/{body['job_id']}"
    fields = body["upload"]["fields"]
    assert fields["key"] == f"imports/{alice.sub}/{body['job_id']}.csv"
    assert fields["Content-Type"] == "text/csv"
    assert body["upload"]["url"].endswith("-imports-123456789012")
    assert job_of(api, alice, body["job_id"])["status"] == "pending"


def test_post_imports_needs_a_token_and_takes_no_fields(api, alice):
    assert api.post("/imports").status_code == 401
    refused = api.post("/imports", headers=alice.headers(), body=json.dumps({"rows": 3}))
    assert refused.status_code == 400
    assert body_of(refused)["Message"].startswith("body: takes no fields")


def test_only_the_importer_may_watch_an_import(api, alice, bob):
    job_id = body_of(api.post("/imports", headers=alice.headers()))["job_id"]

    assert api.get(f"/imports/{job_id}", headers=bob.headers()).status_code == 403
    assert api.get(f"/imports/{job_id}").status_code == 401
    assert api.get("/imports/01KAZZ3M1C5WB1Q8S6Y7P0R2T4", headers=alice.headers()).status_code == 404


# The pipeline


def test_a_csv_becomes_products_exactly_like_those_the_api_creates(api, stack, alice, queues, invoke, completed):
    uploads, chunks = queues
    job_id = start(api, alice, csv("Mug,\"Blue, 350 ml\",1200,EUR,5", "Bad,,twelve,EUR,1",
                                   "Plate,,900,EUR,3", "Bowl,,700,usd,2", "Cup,,300,EUR,9"))

    dispatch(invoke, uploads)
    running = job_of(api, alice, job_id)
    assert (running["status"], running["rows_total"], running["chunks_total"], running["chunks_done"]) == \
        ("running", 5, 2, 0)
    for message in chunks.receive(2):
        assert invoke("import_chunk", chunks.event([message])) == {"batchItemFailures": []}

    job = job_of(api, alice, job_id)
    assert {k: job[k] for k in ("status", "rows_total", "rows_imported", "rows_failed", "chunks_done")} == {
        "status": "completed_with_errors", "rows_total": 5, "rows_imported": 3, "rows_failed": 2, "chunks_done": 2}
    assert job["errors"] == [{"row": 3, "message": "price_cents: must be an integer"},
                             {"row": 5, "message": "currency: must be three upper-case letters (ISO 4217, e.g. EUR)"}]
    mug = body_of(api.get(f"/products/{product_id_for(job_id, 2)}"))
    assert {k: mug[k] for k in ("owner", "name", "description", "price_cents", "currency", "stock", "version")} == {
        "owner": alice.sub, "name": "Mug", "description": "Blue, 350 ml", "price_cents": 1200, "currency": "EUR",
        "stock": 5, "version": 1}
    assert [p["name"] for p in products_of(api, alice.sub)] == ["Cup", "Plate", "Mug"]  # newest (last row) first

    # Item for item, what POST /products writes: same attributes, same types.
    api_made = body_of(create(api, alice, PRODUCT))["id"]
    table = stack.provisioned.env()["PRODUCTS_TABLE"]
    dynamodb = stack.client("dynamodb")
    def shape(product_id: str) -> dict[str, set[str]]:
        item = dynamodb.get_item(TableName=table, Key={"id": {"S": product_id}})["Item"]
        return {name: set(value) for name, value in item.items()}

    assert shape(product_id_for(job_id, 2)) == shape(api_made)

    assert completed.messages() == [{
        "type": "ImportCompleted", "job_id": job_id, "owner": alice.sub, "status": "completed_with_errors",
        "rows_total": 5, "rows_imported": 3, "rows_failed": 2, "finished_at": job["finished_at"]}]


def test_an_imported_product_is_changed_and_deleted_like_any_other(api, alice, queues, invoke):
    uploads, chunks = queues
    job_id = start(api, alice, csv("Mug,,1200,EUR,5"))
    dispatch(invoke, uploads)
    invoke("import_chunk", chunks.event(chunks.receive(1)))
    product_id = product_id_for(job_id, 2)

    changed = api.patch(f"/products/{product_id}", headers=alice.headers(**{"If-Match": '"1"'}),
                        body=json.dumps({"stock": 4}))
    assert changed.status_code == 200 and body_of(changed)["version"] == 2
    assert api.delete(f"/products/{product_id}", headers=alice.headers()).status_code == 204


def test_a_chunk_delivered_twice_is_counted_once_and_creates_no_duplicate(api, alice, queues, invoke, completed):
    uploads, chunks = queues
    job_id = start(api, alice, csv(*good(5)))
    dispatch(invoke, uploads)
    first, second = chunks.receive(2)

    for message in (first, first, second, first, second):  # SQS delivers at least once
        assert invoke("import_chunk", chunks.event([message])) == {"batchItemFailures": []}

    job = job_of(api, alice, job_id)
    assert (job["status"], job["chunks_done"], job["rows_imported"]) == ("completed", 2, 5)
    assert len(products_of(api, alice.sub)) == 5
    assert len(completed.messages()) == 1


def test_a_worker_failing_mid_chunk_is_retried_and_every_row_lands_once(api, alice, queues, invoke):
    uploads, chunks = queues
    aws = install_app(dataclasses.replace(load_settings(), import_chunk_rows=60))
    try:
        job_id = start(api, alice, csv(*good(60)))
        dispatch(invoke, uploads)
        (message,) = chunks.receive(1)

        # Throttled after the first 25 products: the record fails and SQS will deliver it again.
        with failing_batch_writes(aws.dynamodb_bulk, after=1):
            failed = invoke("import_chunk", chunks.event([message]))
        assert failed == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
        assert len(products_of(api, alice.sub)) == 25
        assert job_of(api, alice, job_id)["rows_imported"] == 0

        assert invoke("import_chunk", chunks.event([message])) == {"batchItemFailures": []}
    finally:
        install_app(dataclasses.replace(load_settings(), import_chunk_rows=CHUNK_ROWS))

    job = job_of(api, alice, job_id)
    assert (job["status"], job["rows_imported"], job["chunks_done"]) == ("completed", 60, 1)
    products = products_of(api, alice.sub)
    assert len(products) == 60 and len({p["id"] for p in products}) == 60
    assert {p["version"] for p in products} == {1}


def test_the_last_two_chunks_finishing_at_once_end_the_job_once(api, stack, alice, queues, invoke, completed):
    uploads, chunks = queues
    job_id = start(api, alice, csv(*good(6)))
    dispatch(invoke, uploads)
    messages = chunks.receive(2)
    jobs_table = stack.provisioned.env()["IMPORT_JOBS_TABLE"]
    both_counting = threading.Barrier(2, timeout=20)
    arrived: list[str] = []

    def hold(sender: Any, operation_name: str, table_name: str, **_: Any) -> None:
        # Each worker's first update of the job is its count: both wait until both are about to count.
        if operation_name == "UpdateItem" and table_name == jobs_table and len(arrived) < 2:
            arrived.append(threading.current_thread().name)
            both_counting.wait()

    results: list[Any] = []
    pre_dynamodb_send.connect(hold, weak=False)
    try:
        workers = [threading.Thread(target=lambda m=m: results.append(invoke("import_chunk", chunks.event([m]))),
                                    name=f"worker-{i}") for i, m in enumerate(messages)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    finally:
        pre_dynamodb_send.disconnect(hold)

    assert sorted(arrived) == ["worker-0", "worker-1"]
    assert results == [{"batchItemFailures": []}] * 2
    job = job_of(api, alice, job_id)
    assert (job["status"], job["chunks_done"], job["rows_imported"]) == ("completed", 2, 6)
    assert [e["status"] for e in completed.messages()] == ["completed"]


def test_the_last_chunk_is_counted_and_ends_the_job_in_one_write(api, stack, alice, queues, invoke, completed):
    uploads, chunks = queues
    job_id = start(api, alice, csv(*good(6)))
    dispatch(invoke, uploads)
    first, last = chunks.receive(2)
    assert invoke("import_chunk", chunks.event([first])) == {"batchItemFailures": []}
    jobs_table = stack.provisioned.env()["IMPORT_JOBS_TABLE"]
    writes: list[str] = []

    def count(sender: Any, operation_name: str, table_name: str, **_: Any) -> None:
        if table_name == jobs_table and operation_name not in ("GetItem", "Query"):
            writes.append(operation_name)

    pre_dynamodb_send.connect(count, weak=False)
    try:
        assert invoke("import_chunk", chunks.event([last])) == {"batchItemFailures": []}
    finally:
        pre_dynamodb_send.disconnect(count)

    assert writes == ["UpdateItem"]
    job = job_of(api, alice, job_id)
    assert (job["status"], job["chunks_done"], job["rows_imported"]) == ("completed", 2, 6)
    assert [e["status"] for e in completed.messages()] == ["completed"]


def test_a_file_without_the_header_fails_the_job(api, alice, queues, invoke, completed):
    uploads, chunks = queues
    job_id = start(api, alice, b"title;price\nMug;12\n")

    dispatch(invoke, uploads)

    job = job_of(api, alice, job_id)
    assert job["status"] == "failed" and job["errors"][0]["row"] == 1
    assert job["errors"][0]["message"].startswith("the header must be name,description,price_cents,currency,stock")
    assert [e["status"] for e in completed.messages()] == ["failed"]
