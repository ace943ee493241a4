"""What schemathesis found against the OpenAPI document (tests/contract), pinned here one by one."""

from __future__ import annotations

import json

import pytest

from tests.integration.app.helpers import PRODUCT, body_of, create

pytestmark = pytest.mark.timeout(60)


def test_an_integer_written_with_a_fraction_or_exponent_is_that_integer(api, alice):
    # JSON Schema's "integer" (and so the document's) admits 5.0 and 1e3; they used to be 400s.
    response = api.post("/products", headers=alice.headers(),
                        body='{"name": "Mug", "price_cents": 1e3, "currency": "EUR", "stock": 5.0}')

    assert response.status_code == 201, response.body
    assert (body_of(response)["price_cents"], body_of(response)["stock"]) == (1000, 5)


@pytest.mark.parametrize("stock", ["5.5", "1e400", "9007199254740993.0", "true"])
def test_a_number_that_is_not_an_integer_is_still_a_400_naming_the_field(api, alice, stock):
    body = json.dumps({**PRODUCT, "stock": 0}).replace('"stock": 0', f'"stock": {stock}')

    response = api.post("/products", headers=alice.headers(), body=body)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("stock: ")


def test_an_order_quantity_of_2_point_0_is_2(api, alice, orders_queue):
    product = body_of(create(api, alice))["id"]

    response = api.post("/orders", headers=alice.headers(),
                        body=json.dumps({"product_id": product, "quantity": 2.0, "payment_method": "pm_card_visa"}))

    assert response.status_code == 202, response.body
    order = body_of(api.get(f"/orders/{body_of(response)['order_id']}", headers=alice.headers()))
    assert order["quantity"] == 2


@pytest.mark.parametrize("raw", [b"", b"{}", b" { } ", b"{\n}"])
def test_an_import_accepts_an_empty_body_or_any_empty_json_object(api, alice, raw):
    response = api.post("/imports", headers=alice.headers(), body=raw)

    assert response.status_code == 201, response.body


@pytest.mark.parametrize("raw", [b'{"rows": 3}', b"[]", b"{", b"null", b"\n", b"   "])
def test_an_import_with_any_other_body_is_a_400_naming_the_body(api, alice, raw):
    response = api.post("/imports", headers=alice.headers(), body=raw)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("body: ")
