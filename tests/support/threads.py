"""Making thread races show up in short tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

__all__ = ["frequent_thread_switches"]


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads often (servers and consumers share the test's process), so races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
