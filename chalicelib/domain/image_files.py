"""What an uploaded file is, read from its first bytes, before any decoder sees it.

The pipeline trusts nothing about an upload: the format comes from the magic bytes, and the pixel
count from the format's own header, so a decompression bomb is refused before a decoder
allocates anything for it. Each function raises ImageRejected with a reason a person can read.
"""

from __future__ import annotations

import struct

from chalicelib.domain.images import ACCEPTED_TYPES, MAX_PIXELS, MAX_UPLOAD_BYTES, ImageRejected, describe_size

__all__ = ["sniff", "header_size", "check_object", "inspect_file", "FORMAT_NAMES"]

FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF"}

# Markers that start a frame and carry its size (every SOFn but DHT C4, JPG C8 and DAC CC).
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI, EOI: no length field
_JPEG_SOS = 0xDA
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sniff(data: bytes) -> str | None:
    """The format the file's magic bytes announce (JPEG, PNG, WEBP, GIF), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == _PNG_SIGNATURE:
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Width and height as stored in the format's header, or None when the header is unreadable."""
    try:
        return _READERS[fmt](data)
    except (struct.error, IndexError):
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker == _JPEG_SOS:
            return None  # entropy-coded data before any frame header
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _gif_size(data: bytes) -> tuple[int, int] | None:
    return struct.unpack("<HH", data[6:10])


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas size, 24-bit little-endian, minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":  # lossy: after a 3-byte frame tag and the 9d 01 2a start code
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14 bits each of width-1 and height-1
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_READERS = {"JPEG": _jpeg_size, "PNG": _png_size, "GIF": _gif_size, "WEBP": _webp_size}


def check_object(*, size_bytes: int, content_type: str | None, declared_size: int, declared_type: str) -> None:
    """Compare a stored upload with what its record declared (S3's policy checks are not
    everywhere enforced: moto ignores them). Raises ImageRejected."""
    if size_bytes == 0:
        raise ImageRejected("the file is empty")
    if size_bytes > MAX_UPLOAD_BYTES:
        raise ImageRejected(f"the file is larger than {describe_size(MAX_UPLOAD_BYTES)} "
                            f"({describe_size(size_bytes)})")
    if size_bytes > declared_size:
        raise ImageRejected(f"the file is larger than declared ({size_bytes:,} bytes; "
                            f"{declared_size:,} were declared)")
    if content_type is not None and content_type.split(";")[0].strip().lower() != declared_type:
        raise ImageRejected(f"the file was uploaded as {content_type!r}, but {declared_type} was declared")


def inspect_file(data: bytes, declared_type: str) -> tuple[int, int]:
    """The stored width and height of an acceptable file of `declared_type`; raises ImageRejected."""
    expected = ACCEPTED_TYPES[declared_type]
    found = sniff(data)
    if found is None:
        raise ImageRejected(f"not an image: the file does not start like a {FORMAT_NAMES[expected]} file")
    if found != expected:
        raise ImageRejected(f"the file is a {FORMAT_NAMES[found]} image, but {declared_type} was declared")
    size = header_size(data, found)
    if size is None:
        raise ImageRejected(f"not a valid {FORMAT_NAMES[found]} file: its header gives no image size")
    width, height = size
    if width == 0 or height == 0:
        raise ImageRejected(f"the image has no pixels ({width} x {height})")
    if width * height > MAX_PIXELS:
        raise ImageRejected(f"larger than {MAX_PIXELS // 1_000_000} megapixels "
                            f"({width} x {height} = {width * height / 1e6:.1f} MP)")
    return width, height
