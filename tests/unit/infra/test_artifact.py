"""infra/artifact.py: a zip's binaries checked against Lambda's platform, and its sizes."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from infra.artifact import PLATFORMS, binary_problems, zip_size

pytestmark = pytest.mark.timeout(30)

ARM64 = PLATFORMS["arm64"]


def _elf(machine: int, *glibc_versions: str) -> bytes:
    """The start of a 64-bit little-endian ELF header for ``machine``, and a .dynstr's version names."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HH", 3, machine)
    return header + bytes(44) + b"".join(f"{v}\0".encode() for v in ("libc.so.6", *glibc_versions))


def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, body in members.items():
            zipped.writestr(name, body)
    return path


def test_binaries_and_wheels_built_for_lambdas_platform_pass(tmp_path: Path) -> None:
    layer = _zip(tmp_path / "layer.zip", {
        "python/PIL/_imaging.cpython-313-aarch64-linux-gnu.so": _elf(183, "GLIBC_2.17", "GLIBC_2.28"),
        "python/pillow.libs/libjpeg.so.62": _elf(183, "GLIBC_2.34", "GLIBC_PRIVATE"),
        "python/pillow-13.0.0.dist-info/WHEEL": "Tag: cp313-cp313-manylinux_2_27_aarch64\n"
                                                "Tag: cp313-cp313-manylinux_2_28_aarch64\n",
        "python/pydantic_core-2.0.dist-info/WHEEL": "Tag: cp313-cp313-manylinux2014_aarch64\n",
        "python/boto3-1.0.dist-info/WHEEL": "Tag: py3-none-any\n",
        "python/boto3/__init__.py": "",
    })

    assert binary_problems(layer, ARM64) == []


def test_a_binary_for_another_cpu_or_a_newer_glibc_and_a_wheel_for_another_platform_are_named(
        tmp_path: Path) -> None:
    layer = _zip(tmp_path / "layer.zip", {
        "python/x86/_speedups.cpython-313-x86_64-linux-gnu.so": _elf(62, "GLIBC_2.17"),
        "python/newer/_core.so": _elf(183, "GLIBC_2.17", "GLIBC_2.38"),
        "python/built_here-1.0.dist-info/WHEEL": "Tag: cp313-cp313-linux_aarch64\n",
        "python/x86_wheel-1.0.dist-info/WHEEL": "Tag: cp313-cp313-manylinux_2_17_x86_64\n",
        "python/too_new-1.0.dist-info/WHEEL": "Tag: cp313-cp313-manylinux_2_39_aarch64\n",
    })

    problems = binary_problems(layer, ARM64)

    assert len(problems) == 5
    assert any("_speedups" in p and "machine 62" in p for p in problems)
    assert any("newer/_core.so: needs glibc 2.38" in p for p in problems)
    assert {p.split(":")[0] for p in problems if "wheel for" in p} == {
        "python/built_here-1.0", "python/x86_wheel-1.0", "python/too_new-1.0"}


def test_pip_is_given_every_manylinux_up_to_lambdas_glibc() -> None:
    platforms = ARM64.pip_platforms()

    assert platforms[0] == "manylinux_2_17_aarch64" and "manylinux_2_34_aarch64" in platforms
    assert "manylinux_2_35_aarch64" not in platforms and platforms[-1] == "manylinux2014_aarch64"


def test_a_zips_size_is_measured_zipped_and_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("a.txt", "a" * 100_000)
        zipped.writestr("b.txt", "b")

    size = zip_size(path)

    assert (size.name, size.unpacked, size.files) == ("a.zip", 100_001, 2)
    assert size.zipped == path.stat().st_size < 2_000
