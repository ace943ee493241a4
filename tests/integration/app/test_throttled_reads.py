"""DynamoDB throttling a user's request is a 503 to retry, never a 500."""

from __future__ import annotations

import json

from tests.integration.app.orders_helpers import DynamoDBWire, new_product


def test_a_throttled_product_read_is_a_503_with_retry_after(api, alice):
    product_id = new_product(api, alice, stock=1)
    with DynamoDBWire().watching() as wire:
        wire.fail("GetItem", "ProvisionedThroughputExceededException")
        response = api.get(f"/products/{product_id}")
    assert response.status_code == 503
    assert json.loads(response.body)["Code"] == "ServiceUnavailableError"
    assert response.headers["Retry-After"] == "1"
    assert api.get(f"/products/{product_id}").status_code == 200


def test_a_throttled_listing_is_a_503(api):
    with DynamoDBWire().watching() as wire:
        wire.fail("Query", "ThrottlingException")
        response = api.get("/products?limit=5")
    assert response.status_code == 503
