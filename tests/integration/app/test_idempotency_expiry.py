"""Idempotency records past their time: the key starts afresh (moto, like DynamoDB's lazy TTL,
keeps expired items, so the app must not trust their presence)."""

from __future__ import annotations

import time

import pytest

from tests.integration.app.helpers import PRODUCT, body_of, create

pytestmark = pytest.mark.timeout(60)


def _expire_record(stack, user, key: str, at: int) -> None:
    stack.client("dynamodb").update_item(
        TableName=stack.provisioned.env()["IDEMPOTENCY_TABLE"],
        Key={"pk": {"S": f"create_product#{user.sub}#{key}"}},
        UpdateExpression="SET expires_at = :at", ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues={":at": {"N": str(at)}})


def test_a_key_whose_record_has_expired_creates_a_new_product(api, stack, alice):
    first = body_of(create(api, alice, **{"Idempotency-Key": "k"}))
    _expire_record(stack, alice, "k", at=int(time.time()) - 60)

    again = create(api, alice, {**PRODUCT, "name": "Cup"}, **{"Idempotency-Key": "k"})

    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert body_of(again)["id"] != first["id"] and body_of(again)["name"] == "Cup"
    replay = create(api, alice, {**PRODUCT, "name": "Cup"}, **{"Idempotency-Key": "k"})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.body == again.body


def test_a_key_whose_record_expires_this_very_second_starts_afresh(api, stack, alice):
    # The record store and the conditional write must agree on the boundary: TTL values are
    # whole seconds, so "expires at this second" is expired for both, or the retry path fails.
    create(api, alice, **{"Idempotency-Key": "k"})
    _expire_record(stack, alice, "k", at=int(time.time()))

    again = create(api, alice, **{"Idempotency-Key": "k"})

    assert again.status_code == 201, again.body
    assert "Idempotent-Replayed" not in again.headers
