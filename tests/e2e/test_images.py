"""Images on the running local stack, as a user meets them: a presigned form posted over HTTP, the
renditions' URLs opened, a hostile file refused, and the processing visible in the traces."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
import requests
from PIL import Image

from tests.support.image_corpus import exif_rotated_jpeg, jpeg
from tests.support.xray import wait_for_segment

pytestmark = pytest.mark.timeout(120)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _product(stack: Any, token: str) -> dict[str, Any]:
    created = requests.post(f"{stack.endpoints['api']}/products", headers=_auth(token), timeout=10,
                            json={"name": "Poster", "price_cents": 900, "currency": "EUR", "stock": 3})
    assert created.status_code == 201, created.text
    return created.json()


def _upload(stack: Any, token: str, product_id: str, data: bytes, content_type: str) -> str:
    """Request an upload, then POST the file through the presigned form as curl -F would."""
    ticket = requests.post(f"{stack.endpoints['api']}/products/{product_id}/images", headers=_auth(token),
                           json={"content_type": content_type, "size_bytes": len(data)}, timeout=10)
    assert ticket.status_code == 201, ticket.text
    upload = ticket.json()["upload"]
    assert upload["url"].startswith(stack.endpoints["aws_endpoint"] + "/")
    sent = requests.post(upload["url"], data=upload["fields"],
                         files={"file": ("photo", data, content_type)}, timeout=30)
    assert sent.status_code == 204, sent.text
    return ticket.json()["image_id"]


def _settled(stack: Any, product_id: str, image_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        product = requests.get(f"{stack.endpoints['api']}/products/{product_id}", timeout=10).json()
        image = next(i for i in product["images"] if i["id"] == image_id)
        if image["status"] != "pending":
            return image
        time.sleep(0.1)
    raise AssertionError(f"image {image_id} still pending after 60 s")


def test_a_photo_posted_through_the_presigned_form_gets_three_renditions_that_open(stack):
    token = stack.token(f"dora-{uuid.uuid4().hex[:8]}")
    product = _product(stack, token)
    image_id = _upload(stack, token, product["id"], exif_rotated_jpeg((2400, 1800), 6), "image/jpeg")

    image = _settled(stack, product["id"], image_id)

    assert (image["status"], image["width"], image["height"]) == ("ready", 1800, 2400)  # EXIF: portrait
    sizes = {}
    for name, url in image["renditions"].items():
        assert url.startswith(stack.endpoints["aws_endpoint"] + "/")
        opened = requests.get(url, timeout=10)
        assert opened.status_code == 200 and opened.headers["Content-Type"] == "image/jpeg"
        sizes[name] = Image.open(io.BytesIO(opened.content)).size
    assert sizes == {"small": (200, 267), "medium": (800, 1067), "large": (1600, 2133)}


def test_a_text_file_posing_as_a_jpeg_fails_with_a_reason(stack):
    token = stack.token(f"eve-{uuid.uuid4().hex[:8]}")
    product = _product(stack, token)
    image_id = _upload(stack, token, product["id"], b"GIF? no. JPEG? no. just text.\n" * 10, "image/jpeg")

    image = _settled(stack, product["id"], image_id)

    assert image == {"id": image_id, "status": "failed", "renditions": {},
                     "error": "not an image: the file does not start like a JPEG file"}


def test_processing_is_traced_with_its_steps_and_annotations(stack):
    token = stack.token(f"finn-{uuid.uuid4().hex[:8]}")
    product = _product(stack, token)
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    image_id = _upload(stack, token, product["id"], jpeg((800, 600)), "image/jpeg")
    assert _settled(stack, product["id"], image_id)["status"] == "ready"

    xray = boto3.client("xray", endpoint_url=stack.endpoints["aws_endpoint"], region_name=stack.endpoints["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    # The upload request's segment carries image_id too: the processing's is wanted.
    document = wait_for_segment(xray, started, lambda d: d["name"].endswith("process_images")
                                and f'"image_id": "{image_id}"' in json.dumps(d), timeout=20)
    assert document is not None, "no trace carries the image's annotation"
    text = json.dumps(document)
    assert product["id"] in text and product["owner"] in text
    for step in ("download", "decode", "resize", "encode", "upload"):
        assert f'"name": "{step}"' in text, step
