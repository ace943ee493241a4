"""The import's batch items are, attribute for attribute, what pynamodb's save() would write."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.adapters.import_jobs import _item, bind_import_jobs_table
from chalicelib.adapters.products_table import bind_products_table

NOW = datetime(2026, 11, 23, 19, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def product():
    return bind_products_table(table="products", region="us-east-1")


@pytest.fixture(scope="module")
def error():
    return bind_import_jobs_table(table="jobs", region="us-east-1").error


@pytest.mark.parametrize("numbers", [
    {"price_cents": 1200, "stock": 0},
    {"price_cents": 10**18, "stock": 7},
    {"price_cents": 5, "stock": True},  # not an int to us: serialized by pynamodb, not str()
])
def test_a_product_item_is_what_the_model_serializes(product, numbers):
    values = dict(id="01JCP5Q2R3S4T5V6W7X8Y9Z0AB", owner="sub-1", name="Mug", description="Blue, 350 ml",
                  currency="EUR", version=1, created_at=NOW, updated_at=NOW, **numbers)
    assert _item(product, **values) == product(**values).serialize()


def test_an_error_item_is_what_the_model_serializes(error):
    values = dict(pk="01JCP5Q2R3S4T5V6W7X8Y9Z0AB", sk="error#0000000003", row=3, message="name: is required",
                  expires_at=NOW + timedelta(days=30))
    assert _item(error, **values) == error(**values).serialize()


def test_defaults_apply_as_in_the_model_and_required_attributes_are_named(product):
    values = dict(id="01JCP5Q2R3S4T5V6W7X8Y9Z0AB", owner="sub-1", name="Mug",
                  price_cents=1, currency="EUR", stock=1, version=1, created_at=NOW, updated_at=NOW)
    assert _item(product, **values) == product(**values).serialize()
    assert _item(product, **values, description=None)["description"] == {"S": ""}
    with pytest.raises(ValueError, match="name is required"):
        _item(product, id="01JCP5Q2R3S4T5V6W7X8Y9Z0AB", owner="sub-1", price_cents=1, currency="EUR",
              stock=1, version=1, created_at=NOW, updated_at=NOW)
