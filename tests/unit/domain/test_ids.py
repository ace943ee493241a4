"""Ids: ULIDs, so sorting them sorts by creation time."""

from __future__ import annotations

import os

from chalicelib.domain.ids import is_id, new_id


def test_ids_made_later_sort_after_ids_made_earlier_whatever_their_randomness():
    earlier = new_id(now_ms=1_795_000_000_000, randomness=b"\xff" * 10)
    later = new_id(now_ms=1_795_000_000_001, randomness=b"\x00" * 10)

    assert earlier < later


def test_ids_of_a_sequence_of_moments_sort_in_that_order():
    start = 1_700_000_000_000
    made = [new_id(now_ms=ms, randomness=os.urandom(10)) for ms in range(start, start + 50)]

    assert sorted(made) == made


def test_ids_are_26_crockford_base32_characters():
    value = new_id()

    assert len(value) == 26 and is_id(value)
    assert not set(value) & set("ILOU")


def test_ids_of_the_same_millisecond_differ_by_their_randomness():
    assert new_id(now_ms=1, randomness=os.urandom(10)) != new_id(now_ms=1, randomness=os.urandom(10))


def test_is_id_rejects_what_new_id_cannot_make():
    assert not is_id("")
    assert not is_id("01ARZ3NDEKTSV4RRFFQ69G5FA")  # 25 characters
    assert not is_id("01arz3ndektsv4rrffq69g5fav")  # lower case
    assert not is_id("01ARZ3NDEKTSV4RRFFQ69G5FAU")  # U is not in the alphabet
    assert not is_id("../../etc/passwd0000000000")
    assert not is_id(new_id() + "\n")
