"""GET /health, and the request id every response carries, errors included."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.app.helpers import PRODUCT, body_of, create

pytestmark = pytest.mark.timeout(60)


def test_health_answers_ok_without_a_token(api):
    response = api.get("/health")

    assert response.status_code == 200
    assert body_of(response) == {"status": "ok"}


def test_every_response_carries_a_fresh_request_id(api):
    ids = [api.get("/health").headers.get("X-Request-Id") for _ in range(3)]

    assert all(ids) and len(set(ids)) == 3


def test_a_request_id_offered_by_the_client_is_echoed(api):
    response = api.get("/health", headers={"X-Request-Id": "client-7f3a.2"})

    assert response.headers["X-Request-Id"] == "client-7f3a.2"


def test_an_unusable_offered_request_id_is_replaced(api):
    offered = "two words <script>"

    response = api.get("/health", headers={"X-Request-Id": offered})

    assert response.headers["X-Request-Id"] not in ("", offered)


def test_error_responses_carry_a_request_id_too(api, alice):
    responses = {
        "404": api.get(f"/products/{'0' * 26}"),
        "404 malformed id": api.get("/products/nope"),
        "400": api.get("/products?limit=0"),
        "401": api.post("/products", body="{}", headers={"Content-Type": "application/json"}),
        "405": api.put("/health"),
        "409": None,
    }
    create(api, alice, **{"Idempotency-Key": "k"})
    responses["409"] = create(api, alice, {**PRODUCT, "stock": 1}, **{"Idempotency-Key": "k"})

    for label, response in responses.items():
        assert response.status_code == int(label[:3]), label
        assert uuid.UUID(response.headers["X-Request-Id"]), label
        assert set(body_of(response)) == {"Code", "Message"}, label
