"""Renditions: the pipeline's way against the naive way, and upload -> ready on the local stack.

1. A 12 MP photo-like JPEG, made here, becomes the three renditions (200, 800, 1600 px wide):
   - pipeline: chalicelib/adapters/pillow_images.py as the consumer runs it (JPEG draft mode,
     each rendition from the previous one, orientation applied to the small images);
   - naive: for each size, open, convert to RGB, LANCZOS resize from full size, save JPEG q85.
   Wall time: alternating rounds in this process, medians and their ratio (goal <= 0.35x).
   Peak memory: each way in a fresh interpreter, peak RSS (VmHWM) minus the RSS just before
   processing, i.e. what processing adds (goal <= 0.55x). Quality: SSIM of each pipeline
   rendition against the naive one (luminance, 11x11 Gaussian window, sigma 1.5, the constants
   of Wang et al. 2004), computed with numpy (goal >= 0.99).
2. 40 MP inputs (RGBA PNG and WebP, a GIF with transparency, a 16-bit
   grayscale PNG, a JPEG) through the pipeline in a
   fresh interpreter that has imported the whole app, as the Lambda function has: peak RSS, the
   figure the function's memory setting must cover.
3. Upload -> ready on the local stack (`python -m devstack run` in a subprocess on free ports):
   create a product, request an upload, POST the file through the presigned form, poll
   GET /products/{id} until the image is ready; median over the uploads (goal <= 1 s).

    .venv/bin/python bench/renditions.py [--rounds 7] [--uploads 15] [--skip-stack]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from chalicelib.adapters.pillow_images import JPEG_QUALITY, PillowImageProcessor  # noqa: E402
from chalicelib.domain.image_files import inspect_file  # noqa: E402
from chalicelib.domain.images import rendition_plan  # noqa: E402

PHOTO_SIZE = (4000, 3000)  # 12 MP


def photo_like_jpeg(size: tuple[int, int] = PHOTO_SIZE, seed: int = 7) -> bytes:
    """Smooth light, shapes with soft edges and sensor-like noise: compresses like a photo."""
    import random

    rng = random.Random(seed)
    w, h = size
    sky = Image.linear_gradient("L").resize((w, h))
    base = Image.merge("RGB", (sky, sky.transpose(Image.Transpose.ROTATE_90).resize((w, h)),
                               Image.new("L", (w, h), 140)))
    draw = ImageDraw.Draw(base)
    for _ in range(120):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(20, 500)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(3))
    noise = Image.merge("RGB", [Image.effect_noise((w, h), 12) for _ in range(3)])
    photo = Image.blend(base, noise, 0.12)
    draw = ImageDraw.Draw(photo)
    for _ in range(400):  # fine detail that downscaling must keep
        x, y = rng.randrange(w), rng.randrange(h)
        draw.line((x, y, x + rng.randrange(-80, 80), y + rng.randrange(-80, 80)),
                  fill=tuple(rng.randrange(256) for _ in range(3)), width=2)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def pipeline(data: bytes) -> dict[str, bytes]:
    """What the consumer does between download and upload."""
    processor = PillowImageProcessor()
    inspect_file(data, "image/jpeg")
    decoded = processor.decode(data, "JPEG")
    plan = rendition_plan(decoded.width, decoded.height)
    encoded = processor.encode(decoded, processor.resize(decoded, plan))
    return {e.rendition.name: e.data for e in encoded}


def naive(data: bytes) -> dict[str, bytes]:
    out = {}
    for name, width in (("small", 200), ("medium", 800), ("large", 1600)):
        image = Image.open(io.BytesIO(data)).convert("RGB")
        height = round(image.height * width / image.width)
        buffer = io.BytesIO()
        image.resize((width, height), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=JPEG_QUALITY)
        out[name] = buffer.getvalue()
    return out


# -- SSIM (numpy) -------------------------------------------------------------------------------

def _gaussian_filter(a: Any, sigma: float = 1.5, radius: int = 5) -> Any:
    import numpy as np

    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x ** 2) / (2 * sigma ** 2))
    k /= k.sum()
    # "valid" filtering, as the reference implementation does at the borders
    rows = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, a)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, rows)


def ssim(a_bytes: bytes, b_bytes: bytes) -> float:
    """Mean SSIM of the two images' luminance (Wang, Bovik, Sheikh, Simoncelli 2004)."""
    import numpy as np

    a = np.asarray(Image.open(io.BytesIO(a_bytes)).convert("L"), dtype=np.float64)
    b = np.asarray(Image.open(io.BytesIO(b_bytes)).convert("L"), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"sizes differ: {a.shape} vs {b.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a ** 2
    var_b = _gaussian_filter(b * b) - mu_b ** 2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


# -- memory in a fresh interpreter --------------------------------------------------------------

_CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import bench.renditions as b
from PIL import Image
if sys.argv[4] == "app":
    # Everything the consumer function imports, so the baseline is the function's own.
    import app, chalicelib.bootstrap, chalicelib.adapters.products_table, boto3, aws_xray_sdk.core
data = open(sys.argv[3], "rb").read()
Image.open(__import__("io").BytesIO(b.photo_like_jpeg((64, 48)))).load()  # Pillow's codecs loaded
def status_kib(field):
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's over fork + exec.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
before = status_kib("VmRSS")
getattr(b, sys.argv[2])(data)
print(json.dumps({"before_kib": before, "peak_kib": status_kib("VmHWM")}))
'''


def measure_memory(way: str, path: Path, baseline: str = "bare") -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), way, str(path), baseline],
                          capture_output=True, text=True, check=True, cwd=ROOT,
                          env={**os.environ, "TRACING": "off"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def pipeline_any(data: bytes) -> None:
    """The pipeline for any accepted format (the 40 MP inputs)."""
    from chalicelib.domain.image_files import sniff

    fmt = sniff(data)
    content_type = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}[fmt]
    processor = PillowImageProcessor()
    inspect_file(data, content_type)
    decoded = processor.decode(data, fmt)
    processor.encode(decoded, processor.resize(decoded, rendition_plan(decoded.width, decoded.height)))


def forty_megapixel_inputs(directory: Path) -> dict[str, Path]:
    """Worst cases at 7300 x 5475 (39.97 MP): RGBA PNG and WebP, a GIF with transparency, 16-bit gray, JPEG."""
    size = (7300, 5475)
    paths = {}
    # Decoded size depends on dimensions and mode, not content: smooth content keeps the file
    # under the 20 MiB upload limit, as every real 40 MP upload must be.
    ramp = Image.linear_gradient("L").resize(size)
    rgba = Image.merge("RGBA", (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                ramp.transpose(Image.Transpose.ROTATE_180), ramp))
    paths["RGBA PNG, alpha"] = directory / "rgba40.png"
    rgba.save(paths["RGBA PNG, alpha"], "PNG")
    del rgba, ramp
    gray16 = Image.linear_gradient("L").resize(size).convert("I").point(lambda v: v * 257)
    paths["RGBA WebP, alpha"] = directory / "rgba40.webp"
    Image.open(paths["RGBA PNG, alpha"]).save(paths["RGBA WebP, alpha"], "WEBP", quality=80)
    paths["GIF, transparency"] = directory / "p40.gif"
    Image.open(paths["RGBA PNG, alpha"]).convert("RGB").quantize(64).save(paths["GIF, transparency"], "GIF", transparency=0)
    paths["16-bit gray PNG"] = directory / "gray16_40.png"
    gray16.convert("I;16").save(paths["16-bit gray PNG"], "PNG")
    del gray16
    paths["JPEG"] = directory / "photo40.jpg"
    paths["JPEG"].write_bytes(photo_like_jpeg(size))
    return paths


# -- upload -> ready on the local stack ---------------------------------------------------------

def stack_latency(uploads: int, photo: bytes) -> list[float]:
    import requests

    from tests.e2e.conftest import start_stack, stop_stack

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            api = stack.endpoints["api"]
            token = stack.token("bench-images")
            auth = {"Authorization": f"Bearer {token}"}
            product = requests.post(f"{api}/products", headers=auth, timeout=10, json={
                "name": "Bench", "price_cents": 100, "currency": "EUR", "stock": 1}).json()
            small = io.BytesIO()
            Image.open(io.BytesIO(photo)).resize((2000, 1500)).save(small, "JPEG", quality=88)
            body = small.getvalue()
            latencies = []
            for _ in range(uploads):
                ticket = requests.post(f"{api}/products/{product['id']}/images", headers=auth, timeout=10,
                                       json={"content_type": "image/jpeg", "size_bytes": len(body)}).json()
                started = time.perf_counter()
                sent = requests.post(ticket["upload"]["url"], data=ticket["upload"]["fields"],
                                     files={"file": ("photo.jpg", body, "image/jpeg")}, timeout=30)
                sent.raise_for_status()
                while True:
                    images = requests.get(f"{api}/products/{product['id']}", timeout=10).json()["images"]
                    status = next(i["status"] for i in images if i["id"] == ticket["image_id"])
                    if status != "pending":
                        break
                    if time.perf_counter() - started > 60:
                        raise RuntimeError("the image did not leave pending within 60 s")
                    time.sleep(0.01)
                if status != "ready":
                    raise RuntimeError(f"the upload ended {status}")
                latencies.append(time.perf_counter() - started)
                # one image per product keeps every product under its image cap
                product = requests.post(f"{api}/products", headers=auth, timeout=10, json={
                    "name": "Bench", "price_cents": 100, "currency": "EUR", "stock": 1}).json()
            return latencies
        finally:
            stop_stack(stack)


def timed(fn: Callable[[bytes], Any], data: bytes) -> float:
    started = time.perf_counter()
    fn(data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--uploads", type=int, default=15)
    parser.add_argument("--skip-stack", action="store_true", help="skip the local-stack latency")
    parser.add_argument("--skip-40mp", action="store_true", help="skip the 40 MP memory figures")
    args = parser.parse_args()

    import tempfile

    photo = photo_like_jpeg()
    print(f"renditions of a {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} ({PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6:.0f} MP) "
          f"photo-like JPEG, {len(photo) / 1e6:.1f} MB")
    pipeline(photo), naive(photo)  # warm: codecs loaded, caches filled
    fast, slow = [], []
    for _ in range(args.rounds):
        fast.append(timed(pipeline, photo))
        slow.append(timed(naive, photo))
    f, s = statistics.median(fast), statistics.median(slow)
    print(f"  wall time  pipeline {f * 1000:7.1f} ms   naive {s * 1000:7.1f} ms   "
          f"ratio {f / s:.2f}x (goal <= 0.35x; medians of {args.rounds} alternating rounds)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        path.write_bytes(photo)
        mem = {way: measure_memory(way, path) for way in ("pipeline", "naive")}
        added = {way: (m["peak_kib"] - m["before_kib"]) / 1024 for way, m in mem.items()}
        print(f"  peak memory added  pipeline {added['pipeline']:6.1f} MiB   naive {added['naive']:6.1f} MiB   "
              f"ratio {added['pipeline'] / added['naive']:.2f}x (goal <= 0.55x; fresh interpreters, peak RSS "
              "minus RSS before processing)")

        ours, theirs = pipeline(photo), naive(photo)
        scores = {name: ssim(ours[name], theirs[name]) for name in ("small", "medium", "large")}
        print("  quality vs naive   " + "   ".join(f"{n} SSIM {v:.4f}" for n, v in scores.items())
              + "   (goal >= 0.99)")
        print("  bytes              " + "   ".join(
            f"{n} {len(ours[n]) / 1024:.0f} KiB (naive {len(theirs[n]) / 1024:.0f})" for n in scores))

        if not args.skip_40mp:
            print("40 MP inputs through the pipeline, peak RSS of a fresh interpreter that imported the app:")
            for label, p in forty_megapixel_inputs(Path(tmp)).items():
                started = time.perf_counter()
                pipeline_any(p.read_bytes())
                seconds = time.perf_counter() - started
                m = measure_memory("pipeline_any", p, baseline="app")
                print(f"  {label:18s} {p.stat().st_size / 1e6:5.1f} MB file   peak RSS {m['peak_kib'] / 1024:6.1f} MiB "
                      f"(app imported: {m['before_kib'] / 1024:5.1f} MiB)   {seconds:.2f} s on this machine")

    if not args.skip_stack:
        latencies = stack_latency(args.uploads, photo)
        print(f"upload -> ready on the local stack (2000x1500 JPEG, {len(latencies)} uploads): "
              f"median {statistics.median(latencies) * 1000:.0f} ms, "
              f"min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms (goal: median <= 1 s)")


if __name__ == "__main__":
    main()
