"""Idempotency keys: which keys are accepted, what counts as the same request, what a replay gives."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.domain.errors import IdempotencyConflict, InvalidInput
from chalicelib.domain.idempotency import (
    IdempotencyRecord, StoredResponse, fingerprint, record_key, replay, validate_key,
)


def test_no_header_means_no_key():
    assert validate_key(None) is None


@pytest.mark.parametrize("key", ["a", "order-2026-11-23T12:00:00Z", "x" * 255, "!~"])
def test_visible_ascii_keys_up_to_255_characters_are_accepted(key):
    assert validate_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "é", "line\n"])
def test_other_keys_are_rejected_naming_the_header(key):
    with pytest.raises(InvalidInput) as caught:
        validate_key(key)

    assert caught.value.field == "Idempotency-Key"


def test_the_same_client_key_is_a_different_record_for_another_caller_or_operation():
    keys = {record_key("alice", "create_product", "k1"), record_key("bob", "create_product", "k1"),
            record_key("alice", "place_order", "k1")}

    assert len(keys) == 3


def test_key_order_and_whitespace_do_not_change_the_fingerprint():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})


def test_a_different_value_changes_the_fingerprint():
    assert fingerprint({"name": "Mug"}) != fingerprint({"name": "Cup"})


def _record(body_fingerprint: str) -> IdempotencyRecord:
    return IdempotencyRecord(
        key="create_product#alice#k1", fingerprint=body_fingerprint,
        response=StoredResponse(201, {"id": "first"}),
        expires_at=datetime(2026, 11, 24, tzinfo=timezone.utc))


def test_replaying_the_same_request_returns_the_first_response():
    first = _record(fingerprint({"name": "Mug"}))

    assert replay(first, fingerprint({"name": "Mug"})) == StoredResponse(201, {"id": "first"})


def test_replaying_the_key_with_another_body_is_a_conflict():
    first = _record(fingerprint({"name": "Mug"}))

    with pytest.raises(IdempotencyConflict, match="different request body"):
        replay(first, fingerprint({"name": "Cup"}))
