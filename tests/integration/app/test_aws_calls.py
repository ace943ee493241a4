"""What each product operation costs in AWS requests on a warm container.

Counted with pynamodb's pre_dynamodb_send signal (see the aws_calls fixture): one count per
DynamoDB request, by operation name.
"""

from __future__ import annotations

import pytest

from tests.integration.app.helpers import PRODUCT, body_of, create

pytestmark = pytest.mark.timeout(60)


def test_reading_a_product_is_one_get_item(api, alice, aws_calls):
    product_id = body_of(create(api, alice))["id"]
    aws_calls.clear()

    assert api.get(f"/products/{product_id}").status_code == 200

    assert aws_calls == {"GetItem": 1}


def test_creating_a_product_is_one_put_item(api, alice, aws_calls):
    assert create(api, alice).status_code == 201

    assert aws_calls == {"PutItem": 1}


def test_creating_with_an_idempotency_key_is_one_transaction(api, alice, aws_calls):
    assert create(api, alice, **{"Idempotency-Key": "k"}).status_code == 201

    assert aws_calls == {"TransactWriteItems": 1}


def test_a_replay_is_the_refused_transaction_and_one_read_of_the_first_response(api, alice, aws_calls):
    create(api, alice, **{"Idempotency-Key": "k"})
    aws_calls.clear()

    assert create(api, alice, **{"Idempotency-Key": "k"}).headers["Idempotent-Replayed"] == "true"

    assert aws_calls == {"TransactWriteItems": 1, "GetItem": 1}


def test_a_page_of_the_catalogue_is_one_query(api, alice, aws_calls):
    for _ in range(3):
        create(api, alice)
    aws_calls.clear()

    assert len(body_of(api.get(f"/products?owner={alice.sub}&limit=2"))["items"]) == 2

    assert aws_calls == {"Query": 1}


def test_a_patch_is_one_update_item(api, alice, aws_calls):
    location = create(api, alice).headers["Location"]
    aws_calls.clear()

    response = api.patch(location, headers=alice.headers(**{"If-Match": '"1"'}), body='{"stock": 1}')

    assert response.status_code == 200
    assert aws_calls == {"UpdateItem": 1}


def test_a_refused_request_costs_no_aws_call(api, alice, aws_calls):
    api.post("/products", headers=alice.headers(), body='{"name": ""}')
    api.post("/products", headers={"Content-Type": "application/json"}, body=str(PRODUCT))
    api.get("/products?limit=0")

    assert aws_calls == {}
