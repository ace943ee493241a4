"""The OpenAPI document: generated from the models the routes validate with, and in step with the routes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic.json_schema import models_json_schema

from chalicelib.domain.commands import CreateProduct, PlaceOrder, UpdateProduct, parse_command
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.image_commands import RequestImageUpload
from chalicelib.domain.sales import ProductSales, SalesReport
from chalicelib.entrypoints.openapi import OPERATIONS, document
from chalicelib.entrypoints.representations import sales_json

ROOT = Path(__file__).resolve().parents[3]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict:
    return document()


def _resolve(doc: dict, node: dict) -> dict:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = doc["components"][kind][name]
    return node


def test_the_document_names_exactly_the_routes_chalice_has(doc):
    from app import app

    routes = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item
                  if method in HTTP_METHODS}

    assert documented == routes


def test_every_path_parameter_of_a_route_is_documented(doc):
    for path, item in doc["paths"].items():
        expected = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, operation in item.items():
            params = [_resolve(doc, p) for p in operation["parameters"]]
            assert {p["name"] for p in params if p["in"] == "path"} == expected, (method, path)


def test_request_bodies_are_the_schemas_of_the_models_the_routes_parse_with(doc):
    models = (CreateProduct, UpdateProduct, PlaceOrder, RequestImageUpload)
    _, generated = models_json_schema([(m, "validation") for m in models],
                                      ref_template="#/components/schemas/{model}")

    for model in models:
        assert doc["components"]["schemas"][model.__name__] == generated["$defs"][model.__name__]
    bodies = {op["operationId"]: op["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
              for item in doc["paths"].values() for op in item.values() if "requestBody" in op}
    assert bodies["createProduct"].endswith("/CreateProduct")
    assert bodies["updateProduct"].endswith("/UpdateProduct")
    assert bodies["placeOrder"].endswith("/PlaceOrder")
    assert bodies["requestImageUpload"].endswith("/RequestImageUpload")


def test_a_patch_body_is_documented_as_non_empty_and_never_null(doc):
    schema = doc["components"]["schemas"]["UpdateProduct"]

    assert schema["minProperties"] == 1
    assert "null" not in json.dumps(schema)
    with pytest.raises(InvalidInput, match="stock: must not be null"):
        parse_command(UpdateProduct, {"stock": None})
    with pytest.raises(InvalidInput, match="names no field"):
        parse_command(UpdateProduct, {})


def test_routes_with_a_token_declare_the_bearer_scheme_and_401(doc):
    for op in OPERATIONS:
        operation = doc["paths"][op.path][op.method.lower()]
        if op.auth:
            assert operation["security"] == [{"cognitoIdToken": []}], op.operation_id
            assert "401" in operation["responses"], op.operation_id
        else:
            assert operation["security"] == [], op.operation_id
            assert "401" not in operation["responses"], op.operation_id


def test_every_answer_of_the_app_has_a_request_id_and_its_errors_the_chalice_shape(doc):
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["Code", "Message"]
    for item in doc["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                schema = answer["content"]["application/json"]["schema"] if "content" in answer else {}
                if status == "413":  # API Gateway's answer, before the app runs
                    assert schema["$ref"].endswith("/GatewayError")
                    continue
                assert "X-Request-Id" in answer["headers"]
                if int(status) >= 400:
                    assert schema["$ref"].endswith("/Error")


def test_the_changes_of_a_product_document_if_match_and_its_statuses(doc):
    patch = doc["paths"]["/products/{product_id}"]["patch"]
    delete = doc["paths"]["/products/{product_id}"]["delete"]
    if_match = [_resolve(doc, p) for p in patch["parameters"] if _resolve(doc, p)["name"] == "If-Match"]

    assert if_match and if_match[0]["required"] is True
    assert {"412", "428"} <= set(patch["responses"])
    assert "412" in delete["responses"]
    assert "ETag" in patch["responses"]["200"]["headers"]


def test_importing_the_app_does_not_import_pydantic_or_build_the_document():
    # The read path's cold start must not pay for pydantic: the document is built on first request.
    probe = ("import sys; import app; "
             "print(sorted(m for m in ('pydantic', 'chalicelib.entrypoints.openapi') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# The limits the document states are the code's own


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_every_id_pattern_of_the_document_is_the_ids_module_s(doc):
    from chalicelib.domain.ids import ID_REGEX

    ids = [n["pattern"] for n in _walk(doc["components"]["schemas"]) if "[0-9A-H" in n.get("pattern", "")]

    assert len(ids) >= 8 and set(ids) == {f"^{ID_REGEX}$"}


def test_the_list_limit_is_the_one_the_route_enforces(doc):
    from chalicelib.entrypoints.http_common import LIMIT_DEFAULT, LIMIT_MAX

    schema = doc["components"]["parameters"]["Limit"]["schema"]

    assert (schema["minimum"], schema["maximum"], schema["default"]) == (1, LIMIT_MAX, LIMIT_DEFAULT)


def test_an_order_s_quantity_has_the_same_bounds_asked_and_answered(doc):
    from chalicelib.domain.commands import MIN_QUANTITY
    from chalicelib.domain.orders import MAX_QUANTITY

    schemas = doc["components"]["schemas"]
    for name in ("PlaceOrder", "Order"):
        quantity = schemas[name]["properties"]["quantity"]
        assert (quantity["minimum"], quantity["maximum"]) == (MIN_QUANTITY, MAX_QUANTITY), name


def test_a_product_s_price_stock_and_currency_have_the_same_rules_asked_and_answered(doc):
    schemas = doc["components"]["schemas"]
    for field in ("price_cents", "stock", "currency"):
        answered = schemas["Product"]["properties"][field]
        assert answered == schemas["CreateProduct"]["properties"][field], field


def test_statuses_are_the_domain_s(doc):
    from chalicelib.domain import images, imports
    from chalicelib.domain.orders import QUEUED, OrderStatus, Reason
    from chalicelib.domain.payments import DECLINE_REASONS, PaymentStatus

    schemas = doc["components"]["schemas"]
    assert set(schemas["ProductImage"]["properties"]["status"]["enum"]) == {images.PENDING, images.READY, images.FAILED}
    statuses = [str(s) for s in OrderStatus]
    reasons = {*map(str, Reason), *DECLINE_REASONS}  # a decline's reason is the provider's decline code
    assert schemas["Order"]["properties"]["status"]["enum"] == statuses
    assert set(schemas["Order"]["properties"]["reason"]["enum"]) == reasons
    assert schemas["OrderHistoryEntry"]["properties"]["status"]["enum"] == statuses
    assert set(schemas["OrderHistoryEntry"]["properties"]["reason"]["enum"]) == reasons
    assert schemas["OrderPayment"]["properties"]["status"]["enum"] == [str(s) for s in PaymentStatus]
    assert schemas["OrderAccepted"]["properties"]["status"]["const"] == QUEUED
    assert set(schemas["ImportJob"]["properties"]["status"]["enum"]) == {
        imports.PENDING, imports.RUNNING, *imports.FINAL_STATUSES}


def test_an_import_job_shows_as_many_row_errors_as_the_service_keeps(doc):
    from chalicelib.domain.imports import MAX_ERRORS

    errors = doc["components"]["schemas"]["ImportJob"]["properties"]["errors"]

    assert errors["maxItems"] == MAX_ERRORS
    assert str(MAX_ERRORS) in errors["description"]


def test_the_image_limit_of_a_product_is_the_domain_s(doc):
    from chalicelib.domain.images import MAX_IMAGES_PER_PRODUCT

    conflict = doc["paths"]["/products/{product_id}/images"]["post"]["responses"]["409"]["description"]

    assert f"holds {MAX_IMAGES_PER_PRODUCT} images" in conflict


# Orders: the amount, the payment and the history; listing and cancelling


def test_an_order_answers_its_amount_payment_and_history(doc):
    order = doc["components"]["schemas"]["Order"]

    assert {"amount_cents", "currency", "payment", "history"} <= set(order["required"])
    assert order["properties"]["payment"]["$ref"].endswith("/OrderPayment")
    assert order["properties"]["history"]["items"]["$ref"].endswith("/OrderHistoryEntry")
    assert doc["components"]["schemas"]["OrderPayment"]["required"] == ["status"]
    assert doc["components"]["schemas"]["OrderHistoryEntry"]["required"] == ["status", "at"]


def test_a_placed_order_names_its_payment_method_as_the_domain_checks_it(doc):
    from chalicelib.domain.orders import PAYMENT_METHOD_REGEX

    place = doc["components"]["schemas"]["PlaceOrder"]

    assert "payment_method" in place["required"]
    assert place["properties"]["payment_method"]["pattern"] == f"^{PAYMENT_METHOD_REGEX}$"


def test_the_caller_lists_their_orders_by_status_with_a_cursor(doc):
    from chalicelib.domain.orders import OrderStatus

    operation = doc["paths"]["/orders"]["get"]
    params = {p["name"]: p for p in (_resolve(doc, p) for p in operation["parameters"])}

    assert operation["operationId"] == "listOrders"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/OrderPage")
    assert {"limit", "cursor", "status"} <= set(params)
    assert params["status"]["schema"]["enum"] == [str(s) for s in OrderStatus]
    assert "400" in operation["responses"]


def test_cancelling_answers_the_order_and_409_once_it_has_ended(doc):
    operation = doc["paths"]["/orders/{order_id}/cancel"]["post"]

    assert operation["operationId"] == "cancelOrder"
    assert operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Order")
    assert {"403", "404", "409"} <= set(operation["responses"])


@pytest.mark.parametrize("report", [
    SalesReport(orders=0, units=0, revenue_cents=0, products=(), as_of=None),
    SalesReport(orders=2, units=3, revenue_cents=4500,
                products=(ProductSales("A" * 26, "Mug", 2, 3, 4500, datetime(2026, 12, 3, tzinfo=timezone.utc)),),
                as_of=datetime(2026, 12, 3, tzinfo=timezone.utc)),
], ids=["before-the-first-sale", "after-sales"])
def test_the_sales_answer_is_one_the_document_allows(doc, report):
    # The document's own JSON Schema, as schemathesis checks it (pydantic's model_validate would pass
    # a null the schema forbids): a seller without sales yet gets `as_of: null`.
    import jsonschema_rs

    schema = {"$ref": "#/components/schemas/Sales", "components": doc["components"]}
    jsonschema_rs.validator_for(schema).validate(sales_json(report))
