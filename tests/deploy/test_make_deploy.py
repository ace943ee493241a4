"""`make deploy` refuses early, saying why, when it cannot deploy (it never runs against AWS here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.moto import running_moto_server

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def _env_without_aws(tmp_path: Path) -> dict[str, str]:
    # Nor the calling make's flags: under `make -i test` the inner make would go on past its refusal.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    nowhere = str(tmp_path / "no-such-file")
    env.update(AWS_SHARED_CREDENTIALS_FILE=nowhere, AWS_CONFIG_FILE=nowhere, AWS_EC2_METADATA_DISABLED="true",
               AWS_DEFAULT_REGION="us-east-1")
    return env


def _make_deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "deploy", "STAGE=dev", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=100)


def test_without_aws_credentials_make_deploy_stops_before_packaging_and_says_so(tmp_path: Path) -> None:
    result = _make_deploy(_env_without_aws(tmp_path), "DEPLOY_BUCKET=some-bucket")

    assert result.returncode != 0
    assert "no AWS credentials: 'aws sts get-caller-identity' failed" in result.stderr
    assert "infra.package" not in result.stdout


def test_with_credentials_but_no_bucket_make_deploy_asks_for_one(tmp_path: Path) -> None:
    env = _env_without_aws(tmp_path)
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with running_moto_server() as endpoint_url:  # answers sts get-caller-identity
        result = _make_deploy({**env, "AWS_ENDPOINT_URL": endpoint_url})

    assert result.returncode != 0
    assert "set DEPLOY_BUCKET" in result.stderr
    assert "infra.package" not in result.stdout
