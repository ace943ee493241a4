"""Renditions with Pillow: decode once, shrink step by step, encode each size.

Pillow is imported inside the methods, so only the image consumer pays for it. The caller has
already checked the file's size, magic bytes and header pixel count (domain/image_files.py);
Pillow's own decompression-bomb guard stays on as a second line, set to the same limit.

Why it is fast and small (bench/renditions.py measures it against the naive way):
- JPEG draft mode: libjpeg scales by 1/2, 1/4 or 1/8 while decoding (DCT scaling), to the
  smallest size still at least as large as the largest rendition, so a 12 MP photo is never
  held at full size.
- Each rendition is resized from the previous one (1600 -> 800 -> 200), not from the original.
- EXIF orientation is applied to the finished renditions, not to the full-size image.

Output formats (README "Images" has the table): opaque images become JPEG (quality 85, the
source's ICC profile kept for RGB and grayscale), images whose alpha channel is actually used
become PNG. CMYK is converted to RGB, palettes are expanded, 16-bit samples are scaled to 8 bits,
and only the first frame of an animation is used. Renditions carry no EXIF metadata.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chalicelib.logs import logger
from chalicelib.domain.image_files import FORMAT_NAMES
from chalicelib.domain.images import MAX_PIXELS, ImageRejected, Rendition, rendition_plan
from chalicelib.services.images import DecodedImage

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["PillowImageProcessor", "Decoded", "Resized", "EncodedRendition", "JPEG_QUALITY"]

JPEG_QUALITY = 85
# Box-reduce by an integer factor first while the remaining LANCZOS step is at least 3x: Pillow's
# docs call 3.0 indistinguishable from a full LANCZOS resize, at a fraction of the cost.
REDUCING_GAP = 3.0
_EXIF_ORIENTATION = 0x0112
_ROTATES = frozenset({5, 6, 7, 8})  # orientations that swap width and height


@dataclass
class Decoded:
    """A decoded image in its stored orientation; `width` x `height` is how it is displayed."""

    image: Image
    width: int
    height: int
    orientation: int
    icc_profile: bytes | None


@dataclass
class Resized:
    rendition: Rendition
    image: Image


@dataclass(frozen=True)
class EncodedRendition:
    rendition: Rendition
    data: bytes
    content_type: str
    extension: str


def _pillow() -> ModuleType:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image


class PillowImageProcessor:
    """decode -> resize -> encode, each a separate step so the caller can trace them."""

    def decode(self, data: bytes, fmt: str) -> Decoded:
        """Open and load the first frame of `data` (already checked to be `fmt`).

        Raises ImageRejected for a file Pillow cannot decode (truncated, corrupt, a bomb).
        """
        pil = _pillow()
        try:
            image = pil.open(io.BytesIO(data), formats=[fmt])
            orientation = _orientation(image)
            stored_w, stored_h = image.size
            width, height = (stored_h, stored_w) if orientation in _ROTATES else (stored_w, stored_h)
            if fmt == "JPEG":
                largest = rendition_plan(width, height)[-1]
                image.draft(image.mode, _stored((largest.width, largest.height), orientation))
            image.load()
        except pil.DecompressionBombError:
            raise ImageRejected(f"larger than {MAX_PIXELS // 1_000_000} megapixels") from None
        except Exception as exc:  # noqa: BLE001 - a hostile file makes Pillow raise almost anything
            logger.info("image not decodable", extra={"format": fmt, "error": f"{type(exc).__name__}: {exc}"})
            raise ImageRejected(f"the {FORMAT_NAMES[fmt]} file is truncated or corrupt") from None
        icc = image.info.get("icc_profile") or None
        if image.mode == "CMYK":
            icc = None  # a CMYK profile would not describe the RGB renditions
        return Decoded(_resizable(image), width, height, orientation, icc)

    def resize(self, decoded: DecodedImage, plan: Sequence[Rendition]) -> list[Resized]:
        """Each rendition of `plan`, largest first, each made from the one before it."""
        decoded = _own(decoded)
        pil = _pillow()
        source = decoded.image
        # Pillow's reduce() has no 16-bit path; a plain LANCZOS pass still keeps 2 bytes a pixel.
        gap = None if source.mode.startswith("I") else REDUCING_GAP
        made: dict[tuple[int, int], Image] = {}
        out = []
        for rendition in sorted(plan, key=lambda r: r.width, reverse=True):
            stored = _stored((rendition.width, rendition.height), decoded.orientation)
            image = made.get(stored)
            if image is None:
                image = source if source.size == stored else source.resize(
                    stored, pil.Resampling.LANCZOS, reducing_gap=gap)
                made[stored] = image
                source = image
            out.append(Resized(rendition, image))
        return out

    def encode(self, decoded: DecodedImage, resized: object) -> list[EncodedRendition]:
        """Upright JPEG (opaque) or PNG (alpha in use) bytes of each rendition (`resized` is what
        `resize` returned)."""
        decoded = _own(decoded)
        if not isinstance(resized, list) or not all(isinstance(r, Resized) for r in resized):
            raise TypeError("encode takes what this processor's resize returned")
        if not resized:
            return []
        largest = max(resized, key=lambda r: r.rendition.width).image
        # Judged on the largest rendition, not the original: a 40 MP alpha band is 40 MB to scan.
        alpha = largest.mode in ("LA", "RGBA") and largest.getchannel("A").getextrema() != (255, 255)
        encoded: dict[int, EncodedRendition] = {}
        out = []
        for item in resized:
            done = encoded.get(id(item.image))
            if done is None:
                done = encoded[id(item.image)] = self._encode_one(decoded, item, alpha)
            out.append(EncodedRendition(item.rendition, done.data, done.content_type, done.extension))
        return out

    @staticmethod
    def _encode_one(decoded: Decoded, item: Resized, alpha: bool) -> EncodedRendition:
        image = _upright(_output_mode(item.image, alpha), decoded.orientation)
        buffer = io.BytesIO()
        if alpha:
            image.save(buffer, "PNG", compress_level=6)
            return EncodedRendition(item.rendition, buffer.getvalue(), "image/png", "png")
        options: dict[str, Any] = {"quality": JPEG_QUALITY}
        if decoded.icc_profile:
            options["icc_profile"] = decoded.icc_profile
        image.save(buffer, "JPEG", **options)
        return EncodedRendition(item.rendition, buffer.getvalue(), "image/jpeg", "jpg")


def _own(decoded: DecodedImage) -> Decoded:
    # The service hands back what `decode` returned; the port cannot name Pillow's types.
    if not isinstance(decoded, Decoded):
        raise TypeError("this processor resizes only what its own decode returned")
    return decoded


def _stored(display: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A displayed size in the stored orientation."""
    return (display[1], display[0]) if orientation in _ROTATES else display


def _orientation(image: Image) -> int:
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        return 1
    return value if 1 <= value <= 8 else 1


def _upright(image: Image, orientation: int) -> Image:
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image if method is None else image.transpose(method)


def _resizable(image: Image) -> Image:
    """The image in a mode Pillow resamples properly, without growing it where avoidable.

    Palettes must be expanded first (Pillow resizes "P" and "1" with NEAREST); 16-bit and CMYK
    images are resized as they are and converted once small (_output_mode).
    """
    mode = image.mode
    if mode == "P":
        return image.convert("RGBA" if _palette_has_alpha(image) else "RGB")
    if mode == "PA":
        return image.convert("RGBA")
    if mode == "1":
        return image.convert("L")
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper())
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK") or mode.startswith("I"):
        return image
    return image.convert("RGB")  # YCbCr, LAB, HSV


def _output_mode(image: Image, alpha: bool) -> Image:
    """L or RGB for JPEG, LA or RGBA for PNG."""
    mode = image.mode
    if mode.startswith("I"):
        # 16-bit samples scaled to 8 bits: Pillow's convert("L") would clip everything above 255.
        return image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode == "CMYK":
        return image.convert("RGB")
    if mode in ("LA", "RGBA") and not alpha:
        return image.convert(mode[:-1])
    return image


def _palette_has_alpha(image: Image) -> bool:
    return "transparency" in image.info or (image.palette is not None and image.palette.mode == "RGBA")
