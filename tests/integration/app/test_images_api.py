"""POST /products/{id}/images and the images a product shows, through the real app against moto."""

from __future__ import annotations

import io
import json

import pytest
import requests
from PIL import Image

from chalicelib.domain.images import MAX_IMAGES_PER_PRODUCT
from tests.integration.app.helpers import body_of
from tests.integration.app.images_helpers import (
    ImageUploadsQueue, images_of, new_product, policy_of, post_file, request_upload,
)
from tests.support.image_corpus import jpeg

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def queue(stack):
    uploads = ImageUploadsQueue(stack.client("sqs"), stack.provisioned.env()["IMAGE_UPLOADS_QUEUE"])
    uploads.drain()
    yield uploads
    uploads.drain()


def test_the_owner_gets_a_presigned_post_for_exactly_one_key_type_and_size(api, alice, stack):
    product_id = new_product(api, alice)

    response = request_upload(api, alice, product_id, "image/png", 12_345)

    assert response.status_code == 201, response.body
    ticket = body_of(response)
    key = f"uploads/{alice.sub}/{product_id}/{ticket['image_id']}"
    assert ticket["upload"]["url"] == f"{stack.endpoint_url}/{stack.provisioned['UploadsBucket'].ref}"
    assert ticket["upload"]["fields"]["key"] == key
    assert ticket["upload"]["fields"]["Content-Type"] == "image/png"
    conditions = policy_of(ticket)["conditions"]
    assert {"key": key} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1, 12_345] in conditions


def test_a_requested_image_shows_pending_on_the_product(api, alice):
    product_id = new_product(api, alice)
    image_id = body_of(request_upload(api, alice, product_id, "image/jpeg", 100))["image_id"]

    assert images_of(api, product_id) == {image_id: {"id": image_id, "status": "pending", "renditions": {}}}


@pytest.mark.parametrize("body, field", [
    ({"content_type": "image/tiff", "size_bytes": 10}, "content_type"),
    ({"content_type": "image/svg+xml", "size_bytes": 10}, "content_type"),
    ({"size_bytes": 10}, "content_type"),
    ({"content_type": "image/png", "size_bytes": 0}, "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 20 * 1024 * 1024 + 1}, "size_bytes"),
    ({"content_type": "image/png", "size_bytes": "10"}, "size_bytes"),
    ({"content_type": "image/png", "size_bytes": 10, "key": "../../etc"}, "key"),
])
def test_a_bad_request_is_a_400_naming_the_field(api, alice, body, field):
    product_id = new_product(api, alice)

    response = api.post(f"/products/{product_id}/images", headers=alice.headers(), body=json.dumps(body))

    assert response.status_code == 400, response.body
    assert body_of(response)["Message"].startswith(f"{field}: ")
    assert images_of(api, product_id) == {}


def test_malformed_json_is_a_400(api, alice):
    product_id = new_product(api, alice)
    response = api.post(f"/products/{product_id}/images", headers=alice.headers(), body="{nope")
    assert response.status_code == 400 and body_of(response)["Message"].startswith("body: ")


def test_without_a_token_it_is_401(api, alice):
    product_id = new_product(api, alice)
    response = api.post(f"/products/{product_id}/images", headers={"Content-Type": "application/json"},
                        body=json.dumps({"content_type": "image/png", "size_bytes": 10}))
    assert response.status_code == 401


def test_someone_elses_product_is_403_and_gains_no_image(api, alice, bob):
    product_id = new_product(api, alice)

    assert request_upload(api, bob, product_id, "image/png", 10).status_code == 403
    assert images_of(api, product_id) == {}


def test_an_unknown_product_is_404(api, alice):
    assert request_upload(api, alice, "01KQ0000000000000000000000", "image/png", 10).status_code == 404


def test_a_product_holds_a_limited_number_of_images(api, alice):
    product_id = new_product(api, alice)
    for _ in range(MAX_IMAGES_PER_PRODUCT):
        assert request_upload(api, alice, product_id, "image/png", 10).status_code == 201

    response = request_upload(api, alice, product_id, "image/png", 10)

    assert response.status_code == 409 and body_of(response)["Code"] == "ConflictError"
    assert len(images_of(api, product_id)) == MAX_IMAGES_PER_PRODUCT


def test_a_ready_image_is_read_with_the_product_in_one_dynamodb_read_with_urls_that_open(
        api, alice, queue, stack, aws_calls):
    from app import app
    from chalice.test import Client

    product_id = new_product(api, alice)
    data = jpeg((1000, 750))
    ticket = body_of(request_upload(api, alice, product_id, "image/jpeg", len(data)))
    assert post_file(ticket, data, "image/jpeg").status_code == 204
    with Client(app) as client:
        assert client.lambda_.invoke("process_images", queue.event(queue.receive(1))).payload == {
            "batchItemFailures": []}
    aws_calls.clear()

    response = api.get(f"/products/{product_id}")

    assert dict(aws_calls) == {"GetItem": 1}
    image = body_of(response)["images"][0]
    assert (image["status"], image["width"], image["height"]) == ("ready", 1000, 750)
    assert list(image["renditions"]) == ["small", "medium", "large"]
    widths = {}
    for name, url in image["renditions"].items():
        assert url.startswith(f"{stack.endpoint_url}/") and "X-Amz-Signature=" in url
        opened = requests.get(url, timeout=10)
        assert opened.status_code == 200 and opened.headers["Content-Type"] == "image/jpeg"
        widths[name] = Image.open(io.BytesIO(opened.content)).size
    assert widths == {"small": (200, 150), "medium": (800, 600), "large": (1000, 750)}


def product_with_a_processed_image(api, user, queue) -> str:
    """A new product of `user` whose one uploaded JPEG the pipeline has processed."""
    from app import app
    from chalice.test import Client

    product_id = new_product(api, user)
    data = jpeg((64, 48))
    ticket = body_of(request_upload(api, user, product_id, "image/jpeg", len(data)))
    post_file(ticket, data, "image/jpeg")
    with Client(app) as client:
        client.lambda_.invoke("process_images", queue.event(queue.receive(1)))
    return product_id


def test_image_processing_leaves_the_products_version_alone(api, alice, queue):
    product_id = product_with_a_processed_image(api, alice, queue)

    response = api.patch(f"/products/{product_id}", headers=alice.headers(**{"If-Match": '"1"'}),
                         body=json.dumps({"stock": 2}))

    assert response.status_code == 200, response.body
    assert body_of(response)["version"] == 2 and body_of(response)["images"][0]["status"] == "ready"


def test_the_catalogue_listing_shows_images_with_their_urls(api, alice, queue):
    product_id = product_with_a_processed_image(api, alice, queue)

    listed = body_of(api.get(f"/products?owner={alice.sub}"))["items"]

    assert [i["status"] for i in listed[0]["images"]] == ["ready"]
    assert requests.get(listed[0]["images"][0]["renditions"]["small"], timeout=10).status_code == 200
