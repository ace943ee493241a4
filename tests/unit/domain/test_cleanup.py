"""Which stored objects the cleanup counts as orphans."""

from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.domain.cleanup import MediaKey, media_is_orphan, parse_media_key, upload_is_orphan
from chalicelib.domain.ids import new_id
from chalicelib.domain.images import FAILED, PENDING, READY, ImageRecord

PRODUCT = new_id(now_ms=1_790_000_000_000, randomness=bytes(10))
IMAGE = new_id(now_ms=1_790_000_000_001, randomness=bytes(10))
RENDITION = f"products/{PRODUCT}/images/{IMAGE}/200x150.webp"


def record(status: str = READY, renditions: dict[str, str] | None = None) -> ImageRecord:
    return ImageRecord(id=IMAGE, product_id=PRODUCT, owner="o", content_type="image/png", size_bytes=1,
                       created_at=datetime(2026, 11, 1, tzinfo=timezone.utc), status=status,
                       renditions={"small": RENDITION} if renditions is None else renditions)


def test_a_rendition_key_names_its_product_and_image():
    assert parse_media_key(RENDITION) == MediaKey(PRODUCT, IMAGE)
    assert parse_media_key(f"products/{PRODUCT}/images/{IMAGE}") is None
    assert parse_media_key(f"products/x/images/{IMAGE}/1x1.png") is None


def test_an_upload_is_kept_while_its_record_names_it_and_its_product_exists():
    key = record().upload_key

    assert not upload_is_orphan(key, record(), product_exists=True)
    assert not upload_is_orphan(key, record(status=FAILED), product_exists=True)
    assert upload_is_orphan(key, None, product_exists=True)
    assert upload_is_orphan(key, record(), product_exists=False)
    assert upload_is_orphan(f"uploads/o/{PRODUCT}/{PRODUCT}", record(), product_exists=True)
    assert upload_is_orphan("uploads/whatever", None, product_exists=True)


def test_a_rendition_is_kept_while_its_image_lists_it_or_is_still_being_made():
    assert not media_is_orphan(RENDITION, record(), product_exists=True)
    assert not media_is_orphan(RENDITION, record(status=PENDING, renditions={}), product_exists=True)
    assert media_is_orphan(RENDITION, record(status=FAILED, renditions={}), product_exists=True)
    assert media_is_orphan(RENDITION, record(renditions={"small": "products/other"}), product_exists=True)
    assert media_is_orphan(RENDITION, None, product_exists=True)
    assert media_is_orphan(RENDITION, record(), product_exists=False)
