"""What a file is, from its first bytes: magic numbers, header sizes, and the checks before decoding."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from chalicelib.domain.image_files import check_object, header_size, inspect_file, sniff
from chalicelib.domain.images import MAX_UPLOAD_BYTES, ImageRejected
from tests.support.image_corpus import bomb_png, jpeg, png


def _encoded(fmt: str, size: tuple[int, int], mode: str = "RGB", **options: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (10, 20, 30) + ((40,) if mode == "RGBA" else ())).save(
        out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt, expected", [("JPEG", "JPEG"), ("PNG", "PNG"), ("GIF", "GIF"), ("WEBP", "WEBP")])
def test_the_magic_bytes_name_the_format(fmt, expected):
    assert sniff(_encoded(fmt, (8, 8))) == expected


@pytest.mark.parametrize("data", [b"", b"hello", b"\xff\xd8", b"RIFF\x00\x00\x00\x00WAVE", b"<svg/>", b"BM\x00\x00"])
def test_anything_else_has_no_format(data):
    assert sniff(data) is None


@pytest.mark.parametrize("fmt, options", [
    ("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("GIF", {}),
    ("WEBP", {"quality": 80}), ("WEBP", {"lossless": True}),
])
def test_the_header_gives_the_stored_size(fmt, options):
    assert header_size(_encoded(fmt, (321, 123), **options), fmt) == (321, 123)


def test_an_extended_webp_header_gives_the_canvas_size():
    data = _encoded("WEBP", (300, 77), mode="RGBA", quality=80)  # alpha needs the VP8X layout
    assert data[12:16] == b"VP8X"
    assert header_size(data, "WEBP") == (300, 77)


def test_a_jpeg_header_is_found_after_exif_and_other_segments():
    exif = Image.Exif()
    exif[0x010E] = "x" * 5000  # a long ImageDescription pushes the frame header back
    assert header_size(jpeg((640, 480), exif=exif.tobytes()), "JPEG") == (640, 480)


@pytest.mark.parametrize("data, fmt", [
    (b"\xff\xd8\xff\xda\x00\x08", "JPEG"),            # scan data before any frame header
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),        # cut off before the frame header
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIEND", "PNG"),  # the first chunk is not IHDR
    (b"GIF89a\x01", "GIF"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
])
def test_an_unreadable_header_gives_no_size(data, fmt):
    assert header_size(data, fmt) is None


def test_a_file_of_the_declared_type_passes_with_its_size():
    assert inspect_file(png(Image.new("RGB", (40, 30))), "image/png") == (40, 30)


@pytest.mark.parametrize("data, declared, words", [
    (b"just some text", "image/jpeg", "not an image: the file does not start like a JPEG file"),
    (b"<?xml version='1.0'?><svg/>", "image/png", "not an image: the file does not start like a PNG file"),
    (png(Image.new("RGB", (4, 4))), "image/jpeg", "the file is a PNG image, but image/jpeg was declared"),
    (jpeg((8, 8)), "image/webp", "the file is a JPEG image, but image/webp was declared"),
    (b"\xff\xd8\xff\xda\x00\x08", "image/jpeg", "not a valid JPEG file: its header gives no image size"),
    (bomb_png(), "image/png", "larger than 40 megapixels (50000 x 50000 = 2500.0 MP)"),
    (bomb_png(7000, 6000), "image/png", "larger than 40 megapixels (7000 x 6000 = 42.0 MP)"),
    (bomb_png(0, 10), "image/png", "the image has no pixels (0 x 10)"),
])
def test_a_file_that_cannot_be_the_declared_image_is_rejected_with_its_reason(data, declared, words):
    with pytest.raises(ImageRejected) as rejected:
        inspect_file(data, declared)
    assert rejected.value.reason == words


def test_exactly_40_megapixels_is_accepted():
    assert inspect_file(bomb_png(8000, 5000), "image/png") == (8000, 5000)


def test_a_gif_whose_screen_is_a_bomb_is_rejected_before_decoding():
    data = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00;"
    with pytest.raises(ImageRejected, match="larger than 40 megapixels"):
        inspect_file(data, "image/gif")


@pytest.mark.parametrize("stored, words", [
    (dict(size_bytes=0, content_type="image/png"), "the file is empty"),
    (dict(size_bytes=5001, content_type="image/png"), "the file is larger than declared (5,001 bytes; 5,000 were declared)"),
    (dict(size_bytes=MAX_UPLOAD_BYTES + 1, content_type="image/png"), "the file is larger than 20.0 MiB (20.0 MiB)"),
    (dict(size_bytes=100, content_type="text/html"), "the file was uploaded as 'text/html', but image/png was declared"),
])
def test_an_object_unlike_its_record_is_rejected(stored, words):
    with pytest.raises(ImageRejected) as rejected:
        check_object(**stored, declared_size=5000, declared_type="image/png")
    assert rejected.value.reason == words


def test_an_object_smaller_than_declared_and_of_the_declared_type_passes():
    check_object(size_bytes=10, content_type="image/png; charset=binary", declared_size=5000, declared_type="image/png")
    check_object(size_bytes=10, content_type=None, declared_size=10, declared_type="image/png")
