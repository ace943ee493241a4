"""POST /products: a created product, the 400s that name the field, and idempotent retries."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.app.helpers import PRODUCT, body_of, create

pytestmark = pytest.mark.timeout(60)

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_a_created_product_is_201_with_its_location_and_etag(api, alice):
    response = create(api, alice)

    assert response.status_code == 201
    product = body_of(response)
    assert response.headers["Location"] == f"/products/{product['id']}"
    assert response.headers["ETag"] == '"1"'
    assert {k: product[k] for k in PRODUCT} == PRODUCT
    assert product["owner"] == alice.sub
    assert product["version"] == 1 and product["images"] == []
    assert ISO_UTC.match(product["created_at"]) and product["created_at"] == product["updated_at"]
    assert body_of(api.get(response.headers["Location"])) == product


def test_the_description_may_be_left_out(api, alice):
    body = {k: v for k, v in PRODUCT.items() if k != "description"}

    response = create(api, alice, body)

    assert response.status_code == 201 and body_of(response)["description"] == ""


def test_the_largest_valid_product_is_accepted_even_as_escaped_json(api, alice):
    # json.dumps escapes every non-ASCII character: an emoji becomes 12 bytes on the wire.
    body = {**PRODUCT, "name": "\U0001F37A" * 200, "description": "\U0001F37A" * 2000}

    response = create(api, alice, body)

    assert response.status_code == 201, response.body
    assert body_of(response)["description"] == body["description"]


@pytest.mark.parametrize("change,field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"price_cents": 12.5}, "price_cents"),
    ({"price_cents": True}, "price_cents"),
    ({"price_cents": -1}, "price_cents"),
    ({"stock": 1_000_001}, "stock"),
    ({"currency": "eur"}, "currency"),
    ({"colour": "red"}, "colour"),
])
def test_an_invalid_field_is_a_400_naming_it(api, alice, change, field):
    response = create(api, alice, {**PRODUCT, **change})

    assert response.status_code == 400
    assert body_of(response)["Code"] == "BadRequestError"
    assert body_of(response)["Message"].startswith(f"{field}: ")


def test_a_missing_field_is_a_400_naming_it(api, alice):
    body = {k: v for k, v in PRODUCT.items() if k != "currency"}

    response = create(api, alice, body)

    assert response.status_code == 400 and body_of(response)["Message"] == "currency: is required"


@pytest.mark.parametrize("raw", ['{"name": ', "not json", "[1, 2]", '"Mug"', "", "\xff"])
def test_a_body_that_is_not_a_json_object_is_a_400_naming_the_body(api, alice, raw):
    response = api.post("/products", headers=alice.headers(), body=raw)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("body: ")


def test_a_body_over_the_size_limit_is_a_400_and_creates_nothing(api, alice):
    body = json.dumps({**PRODUCT, "description": " " * 40_000})

    response = api.post("/products", headers=alice.headers(), body=body)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("body: must be at most")
    assert body_of(api.get(f"/products?owner={alice.sub}"))["items"] == []


# Idempotency


def test_a_replay_returns_the_first_response_and_creates_nothing_new(api, alice):
    first = create(api, alice, **{"Idempotency-Key": "order-42"})

    again = create(api, alice, **{"Idempotency-Key": "order-42"})

    assert again.status_code == 201
    assert again.body == first.body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    listed = body_of(api.get(f"/products?owner={alice.sub}"))["items"]
    assert [p["id"] for p in listed] == [body_of(first)["id"]]


def test_a_replay_of_a_product_changed_since_returns_the_first_response(api, alice):
    first = create(api, alice, **{"Idempotency-Key": "k"})
    api.patch(first.headers["Location"], headers=alice.headers(**{"If-Match": '"1"'}), body='{"stock": 0}')

    again = create(api, alice, **{"Idempotency-Key": "k"})

    assert again.body == first.body


def test_the_same_key_with_another_body_is_409_and_creates_nothing(api, alice):
    create(api, alice, **{"Idempotency-Key": "k"})

    response = create(api, alice, {**PRODUCT, "price_cents": 999}, **{"Idempotency-Key": "k"})

    assert response.status_code == 409
    assert body_of(response)["Code"] == "ConflictError"
    assert len(body_of(api.get(f"/products?owner={alice.sub}"))["items"]) == 1


def test_another_user_reusing_a_key_gets_their_own_product(api, alice, bob):
    alices = body_of(create(api, alice, **{"Idempotency-Key": "shared"}))

    response = create(api, bob, {**PRODUCT, "name": "Cup"}, **{"Idempotency-Key": "shared"})

    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    bobs = body_of(response)
    assert bobs["owner"] == bob.sub and bobs["name"] == "Cup" and bobs["id"] != alices["id"]


def test_requests_without_a_key_each_create_a_product(api, alice):
    create(api, alice)
    create(api, alice)

    assert len(body_of(api.get(f"/products?owner={alice.sub}"))["items"]) == 2


@pytest.mark.parametrize("key", ["x" * 256, "with space", "naïve"])
def test_an_unusable_key_is_a_400_naming_the_header(api, alice, key):
    response = create(api, alice, **{"Idempotency-Key": key})

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("Idempotency-Key: ")
