"""What `make package` builds, examined: its sizes, and whether every binary in it can load on
the functions' Lambda platform (architecture and glibc).

Lambda limits a function to 250 MB unpacked, its code and all its layers together; the project
holds itself to a tighter ``PACKAGE_LIMIT_BYTES`` (docs/runtime-and-limits.md says why).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAMBDA_LIMIT_BYTES",
    "MiB",
    "PACKAGE_LIMIT_BYTES",
    "PLATFORMS",
    "LambdaPlatform",
    "ZipSize",
    "binary_problems",
    "zip_size",
]

MiB = 1024 * 1024
LAMBDA_LIMIT_BYTES = 250 * MiB  # Lambda's quota: function code and layers, unpacked
# Ours: the package measured 81 MiB unpacked (python3.13, arm64, Pillow 13, boto3 in the layer,
# bytecode compiled ahead): room for a dependency or two, and a test fails long before Lambda
# would refuse a deploy (and before cold starts grow with the bytes to load).
PACKAGE_LIMIT_BYTES = 100 * MiB


@dataclass(frozen=True)
class LambdaPlatform:
    """What a binary must fit: the CPU (ELF machine, wheel tag) and the runtime's glibc."""

    architecture: str  # Lambda's name: arm64 | x86_64
    machine: str  # the wheel tags' name: aarch64 | x86_64
    elf_machine: int  # e_machine of an ELF file built for it
    glibc: tuple[int, int]

    def pip_platforms(self) -> list[str]:
        """``--platform`` values for pip: it takes each literally, so every manylinux up to ours."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(17, minor + 1)]
        return [*tags, f"manylinux2014_{self.machine}"]


# python3.12 and later run on Amazon Linux 2023: glibc 2.34.
PLATFORMS = {
    "arm64": LambdaPlatform("arm64", "aarch64", 183, (2, 34)),
    "x86_64": LambdaPlatform("x86_64", "x86_64", 62, (2, 34)),
}


@dataclass(frozen=True)
class ZipSize:
    name: str
    zipped: int
    unpacked: int
    files: int


def zip_size(path: Path) -> ZipSize:
    with zipfile.ZipFile(path) as zipped:
        infos = zipped.infolist()
    return ZipSize(path.name, path.stat().st_size, sum(i.file_size for i in infos), len(infos))


_ELF_MAGIC = b"\x7fELF"
# Version names a binary needs from glibc sit in its .dynstr as plain strings ("GLIBC_2.34").
_GLIBC_VERSION = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.\d+)?\x00")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def binary_problems(zip_path: Path, platform: LambdaPlatform) -> list[str]:
    """Why parts of the zip would not load on ``platform``: an ELF file for another CPU or
    needing a newer glibc, a wheel tagged for another platform. Empty when all fit."""
    problems = []
    with zipfile.ZipFile(zip_path) as zipped:
        for info in zipped.infolist():
            if info.is_dir():
                continue
            if info.filename.endswith(".dist-info/WHEEL"):
                problems += _wheel_tag_problems(info.filename, zipped.read(info).decode(), platform)
                continue
            with zipped.open(info) as member:
                head = member.read(20)
                if not head.startswith(_ELF_MAGIC):
                    continue
                body = head + member.read()
            machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
            if machine != platform.elf_machine:
                problems.append(f"{info.filename}: built for ELF machine {machine}, not {platform.machine}")
            needed = max((tuple(map(int, m.groups())) for m in _GLIBC_VERSION.finditer(body)), default=(0, 0))
            if needed > platform.glibc:
                problems.append(f"{info.filename}: needs glibc {needed[0]}.{needed[1]}, "
                                f"Lambda has {platform.glibc[0]}.{platform.glibc[1]}")
    return problems


def _wheel_tag_problems(name: str, wheel: str, platform: LambdaPlatform) -> list[str]:
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    platforms = {tag.rsplit("-", 1)[-1] for tag in tags}
    if not platforms or any(_fits(p, platform) for p in platforms):
        return []
    return [f"{name.split('.dist-info/')[0]}: wheel for {', '.join(sorted(platforms))}, "
            f"not manylinux <= {platform.glibc[0]}.{platform.glibc[1]} {platform.machine}"]


def _fits(tag: str, platform: LambdaPlatform) -> bool:
    if tag == "any":
        return True
    legacy, _, machine = tag.partition("_")
    if legacy in _LEGACY_MANYLINUX:
        return machine == platform.machine and _LEGACY_MANYLINUX[legacy] <= platform.glibc
    parts = tag.split("_", 3)
    if len(parts) == 4 and parts[0] == "manylinux" and parts[3] == platform.machine:
        return (int(parts[1]), int(parts[2])) <= platform.glibc
    return False
