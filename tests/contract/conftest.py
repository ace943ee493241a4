"""The contract suite: schemathesis against the real local stack, started for this folder alone.

Its own stack, because schemathesis creates and deletes hundreds of products, orders and imports:
the e2e tests that count what they made must not share tables with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningStack, start_stack, stop_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("contract"))
    yield running
    stop_stack(running)


@pytest.fixture(scope="session")
def token(stack: RunningStack) -> str:
    return stack.token("schemathesis")


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return tmp_path
