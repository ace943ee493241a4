"""process_images against moto: real uploads through presigned forms, real S3 -> SQS notifications,
invoked as Lambda invokes it. Hostile files, redelivery, throttling up to the DLQ, deleted products,
and the sparse index the cleanup reads."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest
import requests
from chalice.test import Client
from PIL import Image

from chalicelib.adapters.image_table import ImageItem, bind_images_table
from chalicelib.config import load_settings
from tests.integration.app.helpers import body_of
from tests.integration.app.images_helpers import (
    ImageUploadsQueue, conflicting_transactions, failing_s3, images_of, new_product, post_file, request_upload,
)
from tests.support.app_wiring import app_aws
from tests.support.image_corpus import corpus, jpeg

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def queue(stack) -> Iterator[ImageUploadsQueue]:
    uploads = ImageUploadsQueue(stack.client("sqs"), stack.provisioned.env()["IMAGE_UPLOADS_QUEUE"])
    uploads.drain()
    yield uploads
    uploads.drain()


@pytest.fixture(scope="module")
def process(stack) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    from app import app

    with Client(app) as client:
        yield lambda event: client.lambda_.invoke("process_images", event).payload


def upload(api: Any, user: Any, product_id: str, data: bytes, content_type: str, declared: int | None = None) -> str:
    ticket = body_of(request_upload(api, user, product_id, content_type, declared or max(1, len(data))))
    sent = post_file(ticket, data, content_type)
    assert sent.status_code == 204, sent.text
    return ticket["image_id"]


def test_every_file_of_the_corpus_ends_ready_or_failed_and_none_blocks_its_batch(api, alice, queue, process):
    product_id = new_product(api, alice)
    samples = {upload(api, alice, product_id, s.data, s.content_type, s.declared): s for s in corpus()}
    messages = queue.receive(len(samples))

    results = [process(queue.event(messages[i:i + 5])) for i in range(0, len(messages), 5)]

    assert all(r == {"batchItemFailures": []} for r in results)
    for image_id, image in images_of(api, product_id).items():
        sample = samples[image_id]
        if sample.size is not None:
            assert (image["status"], image["width"], image["height"]) == ("ready", *sample.size), sample.name
            small = Image.open(io.BytesIO(requests.get(image["renditions"]["small"], timeout=10).content))
            assert small.width == min(200, sample.size[0]), sample.name
        else:
            assert image["status"] == "failed" and sample.reason in image["error"], (sample.name, image)
            assert image["renditions"] == {}


def test_a_message_delivered_twice_changes_nothing_the_second_time(api, alice, queue, process, stack):
    product_id = new_product(api, alice)
    image_id = upload(api, alice, product_id, jpeg((640, 480)), "image/jpeg")
    messages = queue.receive(1)
    process(queue.event(messages))
    first = images_of(api, product_id)[image_id]
    media = stack.client("s3")
    bucket = stack.provisioned["MediaBucket"].ref
    stored = {o["Key"]: o["LastModified"] for o in media.list_objects_v2(
        Bucket=bucket, Prefix=f"products/{product_id}/")["Contents"]}

    assert process(queue.event(messages)) == {"batchItemFailures": []}

    again = images_of(api, product_id)[image_id]
    assert {k: v for k, v in again.items() if k != "renditions"} == {k: v for k, v in first.items() if k != "renditions"}
    assert {o["Key"]: o["LastModified"] for o in media.list_objects_v2(
        Bucket=bucket, Prefix=f"products/{product_id}/")["Contents"]} == stored


def test_an_upload_larger_than_declared_fails_even_though_the_local_s3_accepted_it(api, alice, queue, process):
    product_id = new_product(api, alice)
    data = jpeg((640, 480))
    image_id = upload(api, alice, product_id, data, "image/jpeg", declared=len(data) // 2)

    process(queue.event(queue.receive(1)))

    image = images_of(api, product_id)[image_id]
    assert image["status"] == "failed" and image["error"].startswith("the file is larger than declared")


def test_an_object_in_the_uploads_bucket_that_no_record_names_is_acknowledged_and_ignored(
        api, alice, queue, process, stack):
    stack.client("s3").put_object(Bucket=stack.provisioned["UploadsBucket"].ref,
                                  Key=f"uploads/{alice.sub}/01KQ0000000000000000000000/01KQ0000000000000000000001",
                                  Body=jpeg((64, 64)), ContentType="image/jpeg")

    assert process(queue.event(queue.receive(1))) == {"batchItemFailures": []}


def test_a_throttled_upload_is_retried_alone_and_lands_in_the_dlq_still_pending(api, alice, queue, process, stack):
    product_id = new_product(api, alice)
    throttled = upload(api, alice, product_id, jpeg((640, 480)), "image/jpeg")
    healthy = upload(api, alice, product_id, jpeg((320, 240)), "image/jpeg")
    batch = queue.receive(2)
    sqs = stack.client("sqs")
    dlq_url = stack.provisioned["ImageUploadsQueueDeadLetterQueue"].ref

    with failing_s3(app_aws().s3, "PutObject", key_contains=throttled):
        for receive_count in range(1, 6):  # the queue's maxReceiveCount is 5
            response = process(queue.event(batch))
            retried = [m for m in batch if m["MessageId"] in {f["itemIdentifier"] for f in response["batchItemFailures"]}]
            assert len(retried) == 1 and throttled in retried[0]["Body"]
            assert retried[0]["Attributes"]["ApproximateReceiveCount"] == str(receive_count)
            queue.delete([m for m in batch if m not in retried])  # what Lambda does with the rest
            queue.make_visible(retried)
            if receive_count < 5:
                batch = queue.receive(1)

    assert sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=1).get("Messages") is None
    parked = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1)["Messages"]
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=parked[0]["ReceiptHandle"])
    assert throttled in parked[0]["Body"]
    shown = images_of(api, product_id)
    assert (shown[throttled]["status"], shown[healthy]["status"]) == ("pending", "ready")


def test_a_transaction_cancelled_by_a_concurrent_one_is_tried_again(api, alice, queue, process):
    product_id = new_product(api, alice)
    image_id = upload(api, alice, product_id, jpeg((640, 480)), "image/jpeg")

    with conflicting_transactions(times=1) as outcomes:
        assert process(queue.event(queue.receive(1))) == {"batchItemFailures": []}

    assert outcomes == ["conflict", "sent"]
    assert images_of(api, product_id)[image_id]["status"] == "ready"


def test_transactions_that_keep_conflicting_leave_the_record_for_a_retry(api, alice, queue, process):
    product_id = new_product(api, alice)
    image_id = upload(api, alice, product_id, jpeg((640, 480)), "image/jpeg")
    messages = queue.receive(1)

    with conflicting_transactions(times=3):
        response = process(queue.event(messages))

    assert response == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert images_of(api, product_id)[image_id]["status"] == "pending"
    queue.make_visible(messages)
    assert process(queue.event(queue.receive(1))) == {"batchItemFailures": []}
    assert images_of(api, product_id)[image_id]["status"] == "ready"


def test_an_image_whose_product_is_deleted_before_processing_fails_and_leaves_no_renditions(
        api, alice, queue, process, stack):
    product_id = new_product(api, alice)
    image_id = upload(api, alice, product_id, jpeg((640, 480)), "image/jpeg")
    assert api.delete(f"/products/{product_id}", headers=alice.headers()).status_code == 204

    assert process(queue.event(queue.receive(1))) == {"batchItemFailures": []}

    record = _images_table().get(image_id)
    assert (record.status, record.error) == ("failed", "the product was deleted before its image was processed")
    listed = stack.client("s3").list_objects_v2(Bucket=stack.provisioned["MediaBucket"].ref,
                                                Prefix=f"products/{product_id}/")
    assert listed["KeyCount"] == 0


def test_the_sparse_pending_index_holds_pending_images_only(api, alice, queue, process):
    product_id = new_product(api, alice)
    pending = body_of(request_upload(api, alice, product_id, "image/jpeg", 100))["image_id"]
    ready = upload(api, alice, product_id, jpeg((64, 48)), "image/jpeg")
    process(queue.event(queue.receive(1)))
    model = _images_table()
    # the cleanup asks for created_at < now - 24 h; a cut-off in the future takes in these two
    cutoff = datetime.now(timezone.utc) + timedelta(hours=1)

    found = {item.id for item in model.pending_index.query("pending", model.created_at < cutoff)}

    assert pending in found and ready not in found


def _images_table() -> type[ImageItem]:
    settings = load_settings()
    return bind_images_table(table=settings.images_table, region=settings.region)
