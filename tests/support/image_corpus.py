"""Image files made on the spot for the tests: valid, unusual and hostile. No binaries committed.

Each entry says what was declared and what the pipeline must make of it: `ready` with the size
it is displayed at, or `failed` with words its reason must contain.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

__all__ = ["Sample", "corpus", "jpeg", "png", "png_chunk", "exif_rotated_jpeg", "bomb_png"]


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    content_type: str
    # ready: (width, height) as displayed; failed: words the reason contains
    size: tuple[int, int] | None = None
    reason: str | None = None
    declared_size: int | None = None  # defaults to len(data)

    @property
    def declared(self) -> int:
        return self.declared_size if self.declared_size is not None else max(1, len(self.data))


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _scene(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A gradient with a bright block in the top-left corner, so orientation is visible."""
    w, h = size
    ramp = Image.linear_gradient("L").resize((w, h))
    image = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("L", (w, h), 90)))
    image.paste((255, 0, 0), (0, 0, max(1, w // 4), max(1, h // 4)))
    return image.convert(mode) if mode != "RGB" else image


def jpeg(size: tuple[int, int] = (640, 480), **options: object) -> bytes:
    return _save(_scene(size), "JPEG", quality=90, **options)


def png(image: Image.Image) -> bytes:
    return _save(image, "PNG")


def exif_rotated_jpeg(stored: tuple[int, int] = (300, 200), orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(_scene(stored), "JPEG", quality=90, exif=exif.tobytes())


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny file whose header promises billions of pixels (one compressed row of zeros)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + png_chunk(b"IEND", b""))


def _gif_two_frames() -> bytes:
    first = Image.new("RGB", (120, 90), (255, 0, 0))
    second = Image.new("RGB", (120, 90), (0, 0, 255))
    return _save(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def _cmyk_jpeg() -> bytes:
    return _save(Image.new("CMYK", (320, 240), (0, 255, 255, 0)), "JPEG", quality=90)  # red in CMYK


def _sixteen_bit_png() -> bytes:
    # black at the left, white at the right, over the whole 16-bit range
    ramp = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((256, 64))
    ramp = ramp.convert("I").point(lambda v: v * 257)
    return png(ramp.convert("I;16"))


def _alpha_png() -> bytes:
    image = Image.new("RGBA", (300, 300), (0, 128, 0, 0))
    image.paste((0, 128, 0, 255), (75, 75, 225, 225))
    return png(image)


def corpus() -> list[Sample]:
    valid_jpeg = jpeg((640, 480))
    return [
        Sample("jpeg", valid_jpeg, "image/jpeg", size=(640, 480)),
        Sample("png", png(_scene((300, 200))), "image/png", size=(300, 200)),
        Sample("webp", _save(_scene((400, 300)), "WEBP", quality=80), "image/webp", size=(400, 300)),
        Sample("animated gif", _gif_two_frames(), "image/gif", size=(120, 90)),
        Sample("exif rotated", exif_rotated_jpeg((300, 200), 6), "image/jpeg", size=(200, 300)),
        Sample("cmyk", _cmyk_jpeg(), "image/jpeg", size=(320, 240)),
        Sample("16-bit", _sixteen_bit_png(), "image/png", size=(256, 64)),
        Sample("alpha", _alpha_png(), "image/png", size=(300, 300)),
        Sample("1x1", png(Image.new("RGB", (1, 1), (10, 20, 30))), "image/png", size=(1, 1)),
        Sample("large", jpeg((2400, 1600)), "image/jpeg", size=(2400, 1600)),
        Sample("zero bytes", b"", "image/jpeg", reason="empty"),
        Sample("truncated", valid_jpeg[: len(valid_jpeg) // 2], "image/jpeg", reason="truncated or corrupt"),
        Sample("text as jpeg", b"hello, I am a JPEG. honest.\n" * 4, "image/jpeg", reason="not an image"),
        Sample("png declared jpeg", png(_scene((50, 50))), "image/jpeg", reason="is a PNG image"),
        Sample("decompression bomb", bomb_png(), "image/png", reason="larger than 40 megapixels"),
        Sample("oversized", jpeg((320, 240)), "image/jpeg", reason="larger than declared", declared_size=1000),
    ]
