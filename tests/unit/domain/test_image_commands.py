"""The body of an image upload request: its two fields, and the words of each refusal."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from chalicelib.domain.commands import InvalidField, Violation
from chalicelib.domain.image_commands import ContentType, RequestImageUpload, parse_upload_request
from chalicelib.domain.images import ACCEPTED_TYPES, MAX_UPLOAD_BYTES

VALID: dict[str, Any] = {"content_type": "image/png", "size_bytes": 1234}


def rejected(body: Any) -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        parse_upload_request(body)
    return caught.value


def test_a_valid_body_becomes_a_request():
    assert parse_upload_request(VALID) == RequestImageUpload(content_type="image/png", size_bytes=1234)


def test_the_largest_upload_allowed_is_accepted():
    assert parse_upload_request({**VALID, "size_bytes": MAX_UPLOAD_BYTES}).size_bytes == MAX_UPLOAD_BYTES


def test_the_content_types_are_the_accepted_ones():
    assert set(get_args(ContentType)) == set(ACCEPTED_TYPES)


@pytest.mark.parametrize("value", ["image/tiff", "IMAGE/PNG", "", 5, None, ["image/png"]])
def test_a_content_type_that_is_there_but_not_accepted_lists_the_accepted_ones(value):
    error = rejected({**VALID, "content_type": value})

    assert (error.field, error.message) == ("content_type", "must be one of image/jpeg, image/png, image/webp, image/gif")


def test_a_missing_content_type_is_required_not_listed():
    error = rejected({"size_bytes": 1})

    assert (error.field, error.message, error.kind) == ("content_type", "is required", Violation.MISSING)


def test_a_file_over_the_limit_is_told_the_limit_in_bytes_and_mib():
    error = rejected({**VALID, "size_bytes": MAX_UPLOAD_BYTES + 1})

    assert (error.field, error.message, error.kind) == (
        "size_bytes", "must be at most 20,971,520 (20 MiB)", Violation.TOO_LARGE)


@pytest.mark.parametrize("value,message,kind", [
    (0, "must be at least 1", Violation.TOO_SMALL),
    (1.0, "must be an integer", Violation.WRONG_TYPE),
    ("12", "must be an integer", Violation.WRONG_TYPE),
])
def test_other_size_errors_keep_the_common_words(value, message, kind):
    error = rejected({**VALID, "size_bytes": value})

    assert (error.field, error.message, error.kind) == ("size_bytes", message, kind)


def test_an_unknown_field_and_a_missing_size_are_named():
    assert rejected({**VALID, "name": "x"}).field == "name"
    assert (rejected({"content_type": "image/png"}).message, rejected({"content_type": "image/png"}).field) == (
        "is required", "size_bytes")
