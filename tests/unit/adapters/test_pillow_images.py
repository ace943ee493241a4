"""Renditions with Pillow: orientation, colour modes, alpha, animation, and files Pillow must refuse."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from chalicelib.adapters.pillow_images import PillowImageProcessor
from chalicelib.domain.images import ImageRejected, rendition_plan
from tests.support.image_corpus import bomb_png, corpus, exif_rotated_jpeg, jpeg, png

processor = PillowImageProcessor()
SAMPLES = {s.name: s for s in corpus()}


def render(data: bytes, fmt: str) -> dict[str, Image.Image]:
    """name -> the decoded rendition, with its content type in .info['content_type']."""
    decoded = processor.decode(data, fmt)
    encoded = processor.encode(decoded, processor.resize(decoded, rendition_plan(decoded.width, decoded.height)))
    out = {}
    for item in encoded:
        image = Image.open(io.BytesIO(item.data))
        image.load()
        image.info["content_type"] = item.content_type
        assert Image.MIME[image.format] == item.content_type
        assert image.size == (item.rendition.width, item.rendition.height)
        out[item.rendition.name] = image
    return out


def _difference(a: Image.Image, b: Image.Image) -> float:
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_is_applied_as_pillow_would(orientation):
    data = exif_rotated_jpeg((300, 200), orientation)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))

    large = render(data, "JPEG")["large"]

    assert large.size == upright.size
    assert _difference(large, upright) < 4  # JPEG noise only


def test_a_rotated_photo_reports_its_displayed_size():
    decoded = processor.decode(exif_rotated_jpeg((300, 200), 6), "JPEG")
    assert (decoded.width, decoded.height) == (200, 300)


def test_renditions_carry_no_exif():
    large = render(exif_rotated_jpeg((300, 200), 6), "JPEG")["large"]
    assert not large.getexif()


def test_a_large_jpeg_is_decoded_reduced_but_never_below_the_largest_rendition():
    decoded = processor.decode(jpeg((4000, 3000)), "JPEG")
    assert 1600 <= decoded.image.width <= 2000


def test_renditions_are_shrunk_from_the_original_never_enlarged():
    renditions = render(jpeg((1000, 500)), "JPEG")
    assert {n: r.size for n, r in renditions.items()} == {
        "small": (200, 100), "medium": (800, 400), "large": (1000, 500)}


def test_cmyk_becomes_an_rgb_jpeg_of_the_same_colour():
    small = render(SAMPLES["cmyk"].data, "JPEG")["small"]
    assert small.mode == "RGB" and small.info["content_type"] == "image/jpeg"
    r, g, b = small.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_samples_are_scaled_to_8_bits_not_clipped():
    small = render(SAMPLES["16-bit"].data, "PNG")["small"]  # a left-to-right ramp over 0..65535
    assert small.mode == "L" and small.info["content_type"] == "image/jpeg"
    row = [small.getpixel((x, 20)) for x in (5, small.width // 2, small.width - 5)]
    assert row[0] < 20 and 100 < row[1] < 160 and row[2] > 235


def test_an_image_using_its_alpha_channel_becomes_a_png_with_alpha():
    medium = render(SAMPLES["alpha"].data, "PNG")["medium"]
    assert medium.info["content_type"] == "image/png" and medium.mode == "RGBA"
    assert medium.getpixel((5, 5))[3] == 0 and medium.getpixel((150, 150)) == (0, 128, 0, 255)


def test_an_opaque_alpha_channel_is_dropped_for_a_jpeg():
    small = render(png(Image.new("RGBA", (64, 64), (200, 10, 10, 255))), "PNG")["small"]
    assert small.info["content_type"] == "image/jpeg" and small.mode == "RGB"


def test_a_palette_with_a_transparent_colour_keeps_its_transparency():
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 255, 255, 200, 0, 0] + [0] * 762)
    image.paste(1, (10, 10, 30, 30))
    out = io.BytesIO()
    image.save(out, "GIF", transparency=0)
    small = render(out.getvalue(), "GIF")["small"]
    assert small.info["content_type"] == "image/png"
    assert small.getpixel((2, 2))[3] == 0 and small.getpixel((20, 20)) == (200, 0, 0, 255)


def test_a_palette_without_transparency_becomes_a_jpeg():
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (0, 0, 200)).quantize(4).save(out, "PNG")
    small = render(out.getvalue(), "PNG")["small"]
    assert small.info["content_type"] == "image/jpeg" and small.mode == "RGB"


def test_only_the_first_frame_of_an_animation_is_used():
    small = render(SAMPLES["animated gif"].data, "GIF")["small"]  # red, then blue
    r, g, b = small.convert("RGB").getpixel((60, 45))
    assert r > 200 and b < 60


def test_grayscale_stays_grayscale():
    out = io.BytesIO()
    Image.linear_gradient("L").save(out, "JPEG")
    assert render(out.getvalue(), "JPEG")["small"].mode == "L"


def test_the_colour_profile_of_an_rgb_photo_is_kept():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    large = render(jpeg((300, 200), icc_profile=profile), "JPEG")["large"]
    assert large.info.get("icc_profile") == profile


def test_renditions_of_one_size_are_encoded_once():
    decoded = processor.decode(png(Image.new("RGB", (120, 80), (1, 2, 3))), "PNG")
    encoded = processor.encode(decoded, processor.resize(decoded, rendition_plan(120, 80)))
    assert len({id(e.data) for e in encoded}) == 1


def test_a_truncated_file_is_rejected_as_corrupt():
    data = SAMPLES["truncated"].data
    with pytest.raises(ImageRejected, match="the JPEG file is truncated or corrupt"):
        processor.decode(data, "JPEG")


def test_a_file_of_another_format_is_not_decoded_as_that_format():
    with pytest.raises(ImageRejected, match="the PNG file is truncated or corrupt"):
        processor.decode(jpeg((10, 10)), "PNG")


def test_pillows_own_bomb_guard_is_on_at_the_pipelines_limit():
    # 9000 x 9000 = 81 MP: past twice the limit, where Pillow refuses to open at all.
    with pytest.raises(ImageRejected, match="larger than 40 megapixels"):
        processor.decode(bomb_png(9000, 9000), "PNG")
