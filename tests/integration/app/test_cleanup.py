"""The hourly cleanup against moto, with the time passed in through the schedule event: each run
as if hours or days later than the state it finds, through the real indexes, buckets and tables."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from chalice.local import LambdaContext
from chalice.test import Client

from chalicelib.domain.ids import new_id
from tests.integration.app.helpers import User, body_of, create
from tests.integration.app.images_helpers import ImageUploadsQueue, images_of, new_product, post_file, request_upload
from tests.support.image_corpus import jpeg

pytestmark = pytest.mark.timeout(120)


def scheduled_event(at: datetime) -> dict[str, Any]:
    """EventBridge's scheduled event, as the hourly rule sends it."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/storefront-dev-cleanup"], "detail": {}}


@pytest.fixture(scope="module")
def cleanup(stack) -> Callable[[datetime], dict[str, Any]]:
    """Run the cleanup as if at `at`, with Lambda's five minutes."""
    from app import app

    def run(at: datetime) -> dict[str, Any]:
        return app.handler_map["cleanup"](scheduled_event(at), LambdaContext("cleanup", 512, max_runtime_ms=300_000))

    return run


@pytest.fixture(scope="module")
def process(stack) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    from app import app

    with Client(app) as client:
        yield lambda event: client.lambda_.invoke("process_images", event).payload


@pytest.fixture
def image_queue(stack) -> Iterator[ImageUploadsQueue]:
    queue = ImageUploadsQueue(stack.client("sqs"), stack.provisioned.env()["IMAGE_UPLOADS_QUEUE"])
    queue.drain()
    yield queue
    queue.drain()


@pytest.fixture
def s3(stack) -> Any:
    return stack.client("s3")


def now() -> datetime:
    return datetime.now(timezone.utc)


def keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def ready_image(api: Any, user: User, queue: ImageUploadsQueue, process: Callable, product_id: str) -> str:
    data = jpeg((400, 300))
    ticket = body_of(request_upload(api, user, product_id, "image/jpeg", len(data)))
    assert post_file(ticket, data, "image/jpeg").status_code == 204
    assert process(queue.event(queue.receive(1))) == {"batchItemFailures": []}
    return ticket["image_id"]


def test_an_image_never_uploaded_fails_after_24_hours_and_nothing_else_changes(api, alice, stack, s3, cleanup):
    product_id = new_product(api, alice)
    image_id = body_of(request_upload(api, alice, product_id, "image/png", 1000))["image_id"]

    assert cleanup(now() + timedelta(hours=23))["images_failed"] == 0
    assert images_of(api, product_id)[image_id]["status"] == "pending"

    report = cleanup(now() + timedelta(hours=25))

    image = images_of(api, product_id)[image_id]
    assert (image["status"], image["error"]) == ("failed", "the image was not uploaded or processed within 24 hours")
    assert report["images_failed"] >= 1
    product = body_of(api.get(f"/products/{product_id}"))
    assert product["version"] == 1  # the product itself did not change


def test_an_uploaded_image_left_pending_fails_and_its_upload_is_deleted(api, alice, stack, s3, cleanup, image_queue):
    product_id = new_product(api, alice)
    data = jpeg((100, 100))
    ticket = body_of(request_upload(api, alice, product_id, "image/jpeg", len(data)))
    assert post_file(ticket, data, "image/jpeg").status_code == 204  # never processed: its message is lost
    bucket = stack.provisioned.env()["UPLOADS_BUCKET"]
    key = ticket["upload"]["fields"]["key"]
    assert key in keys(s3, bucket, key)

    cleanup(now() + timedelta(days=2))

    assert images_of(api, product_id)[ticket["image_id"]]["status"] == "failed"
    assert keys(s3, bucket, key) == set()


def test_objects_no_record_points_to_go_once_an_hour_old_and_live_ones_stay(
        api, alice, stack, s3, cleanup, image_queue, process):
    env = stack.provisioned.env()
    product_id = new_product(api, alice)
    image_id = ready_image(api, alice, image_queue, process, product_id)
    renditions = keys(s3, env["MEDIA_BUCKET"], f"products/{product_id}/")
    upload = f"uploads/{alice.sub}/{product_id}/{image_id}"
    stray_upload = f"uploads/{alice.sub}/{product_id}/{new_id()}"
    stray_rendition = f"products/{product_id}/images/{new_id()}/200x100.webp"
    s3.put_object(Bucket=env["UPLOADS_BUCKET"], Key=stray_upload, Body=b"x")
    s3.put_object(Bucket=env["MEDIA_BUCKET"], Key=stray_rendition, Body=b"x")

    cleanup(now() + timedelta(minutes=30))  # in flight: too young to judge
    assert stray_upload in keys(s3, env["UPLOADS_BUCKET"], "uploads/")
    assert stray_rendition in keys(s3, env["MEDIA_BUCKET"], "products/")

    report = cleanup(now() + timedelta(hours=2))

    assert keys(s3, env["UPLOADS_BUCKET"], f"uploads/{alice.sub}/") == {upload}
    assert keys(s3, env["MEDIA_BUCKET"], f"products/{product_id}/") == renditions
    assert renditions and report["upload_objects_deleted"] >= 1 and report["media_objects_deleted"] >= 1
    image = images_of(api, product_id)[image_id]
    assert image["status"] == "ready"


def test_the_images_of_a_deleted_product_go_with_their_objects(api, alice, stack, s3, cleanup, image_queue, process):
    env = stack.provisioned.env()
    product_id = new_product(api, alice)
    ready_image(api, alice, image_queue, process, product_id)
    body_of(request_upload(api, alice, product_id, "image/png", 1000))  # and one still pending
    assert api.delete(f"/products/{product_id}", headers=alice.headers()).status_code == 204

    report = cleanup(now() + timedelta(days=2))

    assert keys(s3, env["MEDIA_BUCKET"], f"products/{product_id}/") == set()
    assert keys(s3, env["UPLOADS_BUCKET"], f"uploads/{alice.sub}/{product_id}/") == set()
    images = stack.client("dynamodb").query(
        TableName=env["IMAGES_TABLE"], IndexName="product-index", KeyConditionExpression="product_id = :p",
        ExpressionAttributeValues={":p": {"S": product_id}})["Items"]
    assert images == []
    assert report["image_records_deleted"] >= 2


def test_idempotency_records_go_when_they_expire(api, alice, stack, cleanup):
    response = create(api, alice, **{"Idempotency-Key": f"key-{uuid.uuid4().hex}"})
    assert response.status_code == 201
    table = stack.provisioned.env()["IDEMPOTENCY_TABLE"]
    dynamodb = stack.client("dynamodb")
    pks = [i["pk"]["S"] for i in dynamodb.scan(TableName=table)["Items"] if alice.sub in i["pk"]["S"]]
    assert len(pks) == 1

    cleanup(now() + timedelta(hours=47))
    assert "Item" in dynamodb.get_item(TableName=table, Key={"pk": {"S": pks[0]}})

    report = cleanup(now() + timedelta(hours=49))

    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": pks[0]}})
    assert report["idempotency_records_deleted"] >= 1
    assert api.get(f"/products/{body_of(response)['id']}").status_code == 200  # the product stays


def test_import_jobs_go_after_their_retention_with_their_file(api, alice, stack, s3, cleanup):
    created = body_of(api.post("/imports", headers=alice.headers()))
    fields = created["upload"]["fields"]
    bucket = stack.provisioned.env()["IMPORTS_BUCKET"]
    s3.put_object(Bucket=bucket, Key=fields["key"], Body=b"name,description,price_cents,currency,stock\n")

    cleanup(now() + timedelta(days=6))
    assert api.get(f"/imports/{created['job_id']}", headers=alice.headers()).status_code == 200

    report = cleanup(now() + timedelta(days=8))

    assert api.get(f"/imports/{created['job_id']}", headers=alice.headers()).status_code == 404
    assert keys(s3, bucket, fields["key"]) == set()
    assert report["import_jobs_deleted"] >= 1


def test_two_runs_at_once_do_the_work_once_and_fail_nothing(api, alice, stack, s3, cleanup):
    env = stack.provisioned.env()
    product_id = new_product(api, alice)
    pending = [body_of(request_upload(api, alice, product_id, "image/png", 10))["image_id"] for _ in range(5)]
    strays = [f"uploads/{alice.sub}/{product_id}/{new_id()}" for _ in range(20)]
    for key in strays:
        s3.put_object(Bucket=env["UPLOADS_BUCKET"], Key=key, Body=b"x")
    at = now() + timedelta(days=2)
    reports: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(cleanup(at))
        except BaseException as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)

    assert errors == [] and len(reports) == 2
    assert {i["status"] for i in images_of(api, product_id).values()} == {"failed"}
    assert set(pending) == set(images_of(api, product_id))
    assert not keys(s3, env["UPLOADS_BUCKET"], f"uploads/{alice.sub}/{product_id}/") & set(strays)


def test_a_run_logs_one_summary_line_with_its_metrics(cleanup, app_logs):
    app_logs.set_level(logging.INFO)

    report = cleanup(now())

    (line,) = [r for r in app_logs.records if r.getMessage() == "cleanup summary"]
    assert line.images_failed == report["images_failed"] and line.complete is True
    # CloudWatch's embedded metric format: the same line feeds metrics, no PutMetricData call.
    (directive,) = getattr(line, "_aws")["CloudWatchMetrics"]
    assert directive["Namespace"] == "Storefront"
    assert {"CleanupImagesFailed", "CleanupMediaObjectsDeleted", "CleanupIdempotencyRecordsDeleted",
            "CleanupImportJobsDeleted", "CleanupDuration"} <= {m["Name"] for m in directive["Metrics"]}
    assert line.CleanupObjectsListed == [float(report["objects_listed"])]
