"""Upload keys, the rendition plan and the accepted types."""

from __future__ import annotations

import pytest

from chalicelib.domain.image_commands import ContentType
from chalicelib.domain.images import (
    ACCEPTED_TYPES, Rendition, parse_upload_key, rendition_key, rendition_plan, upload_key,
)

PRODUCT = "01KQ0000000000000000000000"
IMAGE = "01KQ0000000000000000000001"


def test_an_upload_key_is_built_from_ids_only_and_parses_back():
    key = upload_key("3f1c-sub", PRODUCT, IMAGE)
    assert key == f"uploads/3f1c-sub/{PRODUCT}/{IMAGE}"
    parsed = parse_upload_key(key)
    assert (parsed.owner, parsed.product_id, parsed.image_id) == ("3f1c-sub", PRODUCT, IMAGE)


@pytest.mark.parametrize("key", [
    f"uploads/owner/{PRODUCT}",
    f"uploads/owner/{PRODUCT}/{IMAGE}/extra",
    f"imports/owner/{PRODUCT}/{IMAGE}",
    f"uploads/../{PRODUCT}/{IMAGE}",
    f"uploads/owner/{PRODUCT}/not-an-id",
    f"uploads/owner/../{IMAGE}",
    f"uploads//{PRODUCT}/{IMAGE}",
    f"uploads/own er/{PRODUCT}/{IMAGE}",
])
def test_a_key_this_app_never_hands_out_parses_to_nothing(key):
    assert parse_upload_key(key) is None


def test_renditions_are_200_800_and_1600_wide_with_the_height_in_proportion():
    assert rendition_plan(4000, 3000) == [
        Rendition("small", 200, 150), Rendition("medium", 800, 600), Rendition("large", 1600, 1200)]


def test_renditions_are_never_wider_than_the_original():
    assert rendition_plan(640, 480) == [
        Rendition("small", 200, 150), Rendition("medium", 640, 480), Rendition("large", 640, 480)]
    assert rendition_plan(1, 1) == [Rendition("small", 1, 1), Rendition("medium", 1, 1), Rendition("large", 1, 1)]


def test_a_very_wide_image_keeps_at_least_one_row():
    assert rendition_plan(30000, 10)[0] == Rendition("small", 200, 1)


def test_renditions_of_the_same_size_share_one_key():
    small, medium, large = rendition_plan(150, 100)
    assert rendition_key(PRODUCT, IMAGE, small, "jpg") == rendition_key(PRODUCT, IMAGE, large, "jpg") == (
        f"products/{PRODUCT}/images/{IMAGE}/150x100.jpg")


def test_the_request_body_accepts_exactly_the_accepted_types():
    assert set(ContentType.__args__) == set(ACCEPTED_TYPES)
