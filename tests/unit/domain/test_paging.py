"""Listing cursors: what encode_cursor makes comes back; anything else is a 400 naming `cursor`."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.ids import new_id
from chalicelib.domain.paging import decode_cursor, encode_cursor

LAST = new_id(now_ms=1_795_000_000_000, randomness=bytes(10))


def _b64(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def _rejected(cursor: str, scope: str = "all") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor, scope)
    return caught.value


def test_a_cursor_round_trips_to_the_last_id_served():
    assert decode_cursor(encode_cursor("all", LAST), "all") == LAST


def test_a_cursor_is_url_safe_without_padding():
    cursor = encode_cursor("owner:7c1e-aa", LAST)

    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_cursor_of_another_listing_scope_is_rejected():
    cursor = encode_cursor("owner:alice", LAST)

    assert _rejected(cursor, scope="owner:bob").field == "cursor"
    assert _rejected(cursor, scope="all").field == "cursor"


def test_a_tampered_cursor_is_rejected():
    cursor = encode_cursor("all", LAST)
    tampered = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]

    assert _rejected(tampered).field == "cursor"


@pytest.mark.parametrize("cursor", ["", "!!!!", "not base64 at all", "é", "AAAA", "e30"])
def test_garbage_is_rejected(cursor):
    assert _rejected(cursor).field == "cursor"


@pytest.mark.parametrize("document", [
    [1, 2],
    "all",
    {"v": 1, "scope": "all"},
    {"v": 2, "scope": "all", "after": LAST},
    {"v": 1, "scope": "all", "after": 12},
    {"v": 1, "scope": "all", "after": "not-an-id"},
    {"v": 1, "scope": "all", "after": LAST, "extra": True},
])
def test_well_formed_json_that_no_listing_made_is_rejected(document):
    assert _rejected(_b64(document)).field == "cursor"


def test_an_overlong_cursor_is_rejected_before_decoding():
    padded = _b64({"v": 1, "scope": "all", "after": LAST, "pad": "x" * 600})

    assert _rejected(padded).field == "cursor"
