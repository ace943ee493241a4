"""`make package`'s output, built once per test session for each stage.

The first run on a machine downloads the layer's wheels for Lambda's platform (requirements/lambda.txt,
about half a minute, needs the network); infra/bundle.py caches the layer under .chalice/deployments
keyed by the lock's digest, so later runs only zip the app (seconds) and need no network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.package import build

STAGES = ("dev", "prod")


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stage -> the folder `make package STAGE=<stage>` would write (template.json, sam.json, zips)."""
    root = tmp_path_factory.mktemp("package")
    return {stage: build(stage, root / stage).parent for stage in STAGES}


@pytest.fixture(scope="session")
def templates(packaged: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {stage: json.loads((folder / "template.json").read_text()) for stage, folder in packaged.items()}


@pytest.fixture(scope="session")
def template(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The dev stage's template (the stages differ only in settings, which tests name explicitly)."""
    return templates["dev"]
