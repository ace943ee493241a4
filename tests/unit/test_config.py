"""chalicelib/config.py: the queue consumers' concurrency caps, read from the stage's variables."""

from __future__ import annotations

import pytest

from chalicelib.config import load_settings, max_concurrency

pytestmark = pytest.mark.timeout(30)


def test_a_cap_is_the_stage_variable_or_its_default() -> None:
    assert max_concurrency("IMAGES_MAX_CONCURRENCY", 10, {"IMAGES_MAX_CONCURRENCY": "25"}) == 25
    assert max_concurrency("IMAGES_MAX_CONCURRENCY", 10, {}) == 10


@pytest.mark.parametrize("value", ["1", "1001"])
def test_a_cap_lambda_would_refuse_stops_the_app_at_import(value: str) -> None:
    with pytest.raises(RuntimeError, match="DEAD_LETTERS_MAX_CONCURRENCY must be 2..1000"):
        max_concurrency("DEAD_LETTERS_MAX_CONCURRENCY", 2, {"DEAD_LETTERS_MAX_CONCURRENCY": value})


REQUIRED = {"PRODUCTS_TABLE": "p", "IDEMPOTENCY_TABLE": "i", "USER_POOL": "us-east-1_x", "USER_POOL_CLIENT": "c"}


def test_payments_go_to_stripe_unless_the_stack_names_another_provider() -> None:
    assert load_settings(REQUIRED).payments_api_url == "https://api.stripe.com"
    local = load_settings({**REQUIRED, "PAYMENTS_API_URL": "http://127.0.0.1:4242/",
                           "PAYMENTS_API_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:1:secret:k"})
    assert (local.payments_api_url, local.payments_api_key_secret) == (
        "http://127.0.0.1:4242", "arn:aws:secretsmanager:us-east-1:1:secret:k")
