"""chalicelib/config.py: the queue consumers' concurrency caps, read from the stage's variables."""

from __future__ import annotations

import pytest

from chalicelib.config import max_concurrency

pytestmark = pytest.mark.timeout(30)


def test_a_cap_is_the_stage_variable_or_its_default() -> None:
    assert max_concurrency("IMAGES_MAX_CONCURRENCY", 10, {"IMAGES_MAX_CONCURRENCY": "25"}) == 25
    assert max_concurrency("IMAGES_MAX_CONCURRENCY", 10, {}) == 10


@pytest.mark.parametrize("value", ["1", "1001"])
def test_a_cap_lambda_would_refuse_stops_the_app_at_import(value: str) -> None:
    with pytest.raises(RuntimeError, match="DEAD_LETTERS_MAX_CONCURRENCY must be 2..1000"):
        max_concurrency("DEAD_LETTERS_MAX_CONCURRENCY", 2, {"DEAD_LETTERS_MAX_CONCURRENCY": value})
