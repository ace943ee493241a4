"""The OpenAPI document: generated from the models the routes validate with, and in step with the routes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic.json_schema import models_json_schema

from chalicelib.domain.commands import CreateProduct, PlaceOrder, UpdateProduct, parse_command
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.image_commands import RequestImageUpload
from chalicelib.entrypoints.openapi import OPERATIONS, document

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
