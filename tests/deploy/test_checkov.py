"""checkov's CloudFormation checks pass on `make package`'s template, except the ones
infra/checkov.yaml skips, each with its reason."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
CONFIG = ROOT / "infra" / "checkov.yaml"
_SKIP = re.compile(r"^\s+- (CKV2?_AWS_\d+)\s*(?:#\s*(.*))?$")


def _skips() -> dict[str, str]:
    """Check id -> the reason written beside it in infra/checkov.yaml."""
    return {m[1]: (m[2] or "").strip() for line in CONFIG.read_text().splitlines() if (m := _SKIP.match(line))}


def _scan(template: Path) -> dict[str, object]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: `make test` installs it (requirements/checkov.txt)")
    result = subprocess.run([str(CHECKOV), "--config-file", str(CONFIG), "--file", str(template), "--output", "json",
                             "--quiet", "--compact"], capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    return dict(report if isinstance(report, dict) else report[0])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_checkov_finds_no_failed_check_outside_the_skips_file(packaged: dict[str, Path], stage: str) -> None:
    report = _scan(packaged[stage] / "template.json")
    failed = report["results"]["failed_checks"]  # type: ignore[index]

    assert [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed] == []
    assert report["summary"]["passed"] > 100  # type: ignore[index]


def test_every_skipped_check_says_why_in_one_line() -> None:
    skips = _skips()

    assert skips, "infra/checkov.yaml lists no skip: the pattern above no longer reads it"
    assert {check: reason for check, reason in skips.items() if len(reason) < 20} == {}
