"""The bytes `make package` ships: the dependency layer built from the hashed lock, bytecode
compiled ahead for both zips, and their sizes against our limit and Lambda's.

Split from infra/package.py, which finishes the template: this module makes and measures zips.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from infra.artifact import LAMBDA_LIMIT_BYTES, PACKAGE_LIMIT_BYTES, PLATFORMS, MiB, binary_problems, zip_size

__all__ = ["LAMBDA_RUNTIME", "LAYER_LOCK", "LAYER_ZIP", "PackagingError", "add_bytecode", "build_layer",
           "package_sizes"]

ROOT = Path(__file__).resolve().parent.parent
LAYER_ZIP = "layer.zip"
LAYER_LOCK = ROOT / "requirements" / "lambda.txt"
# Chalice takes the runtime from the Python it runs under: make's venv is 3.13, and so is Lambda's.
LAMBDA_RUNTIME = "python3.13"


class PackagingError(RuntimeError):
    """The package would not work on Lambda."""


def build_layer(lock: Path, target: Path, architecture: str) -> Path:
    """``target``: a zip of ``python/`` holding every package of ``lock`` for Lambda's ``architecture``.

    pip installs the lock's wheels for that platform (hashes required, no source builds); the
    result is cached under .chalice/deployments by the lock's digest and the platform, so only a
    changed lock downloads. Raises CalledProcessError when pip fails, PackagingError when a binary
    would not load on Lambda.
    """
    platform = PLATFORMS[architecture]
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    key = hashlib.sha256(f"{digest} {LAMBDA_RUNTIME} {platform} v2".encode()).hexdigest()[:20]
    cached = ROOT / ".chalice" / "deployments" / f"layer-{key}-{architecture}.zip"
    if not cached.exists():
        with tempfile.TemporaryDirectory() as tmp:
            site = Path(tmp) / "python"
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       "--require-hashes", "--only-binary=:all:", "--no-compile", "--target", str(site),
                       "--implementation", "cp", "--python-version", LAMBDA_RUNTIME.removeprefix("python"),
                       "--abi", "cp" + LAMBDA_RUNTIME.removeprefix("python").replace(".", ""),
                       *(arg for tag in platform.pip_platforms() for arg in ("--platform", tag)),
                       "-r", str(lock)]
            print(f"building the dependency layer: {lock.relative_to(ROOT)} for {LAMBDA_RUNTIME} {architecture}",
                  flush=True)
            subprocess.run(command, check=True)
            shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts, with this machine's shebang
            _compile(site)
            partial = cached.with_suffix(".partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            _zip_tree(site.parent, partial, top="python")
            problems = binary_problems(partial, platform)
            if problems:
                partial.unlink()
                raise PackagingError("the layer would not load on Lambda:\n  " + "\n  ".join(problems))
            partial.rename(cached)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return target


def _compile(folder: Path) -> None:
    """Bytecode beside every module, valid whatever the files' times: Lambda's /var/task and /opt are
    read-only, so a module without it (or with a timestamp-checked one, which an unzip makes stale)
    is compiled again in memory at every cold start. This interpreter is 3.13, as Lambda's."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(folder)], check=True)


def add_bytecode(app_zip: Path) -> None:
    """Chalice's zip of the app, again with each module's bytecode (see ``_compile``)."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(app_zip) as zipped:
            zipped.extractall(Path(tmp) / "app")
        _compile(Path(tmp) / "app")
        _zip_tree(Path(tmp), app_zip, top="app", strip_top=True)


def _zip_tree(root: Path, target: Path, *, top: str, strip_top: bool = False) -> None:
    """Zip ``root/top`` with stable order and times: the same lock gives the same bytes."""
    base = root / top if strip_top else root
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zipped:
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(base)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zipped.writestr(info, path.read_bytes())


def package_sizes(out_dir: Path) -> str:
    """The zips' sizes, zipped and unpacked, against Lambda's limit and ours (both unpacked)."""
    sizes = [zip_size(out_dir / name) for name in ("deployment.zip", LAYER_ZIP)]
    total = sum(s.unpacked for s in sizes)
    lines = [f"  {s.name:16s} {s.zipped / MiB:6.1f} MiB zipped  {s.unpacked / MiB:6.1f} MiB unpacked  {s.files:6d} files"
             for s in sizes]
    lines.append(f"  {'function+layer':16s} {sum(s.zipped for s in sizes) / MiB:6.1f} MiB zipped  "
                 f"{total / MiB:6.1f} MiB unpacked  (limits, unpacked: ours {PACKAGE_LIMIT_BYTES / MiB:.0f} MiB, "
                 f"Lambda's {LAMBDA_LIMIT_BYTES / MiB:.0f} MiB)")
    return "\n".join(lines)
