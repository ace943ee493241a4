"""Products over HTTP: translate a request into a service call and the result into a response."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.bootstrap import services
from chalicelib.domain import errors
from chalicelib.domain.identity import is_user_id
from chalicelib.domain.products import Product
from chalicelib.entrypoints.http_common import (
    caller, idempotency_key, if_match, json_body, limit, query, routes,
)
from chalicelib.entrypoints.representations import product_json

__all__ = ["api"]

api = Blueprint(__name__)
route = routes(api)



def _annotate(product_id: str, owner: str | None = None) -> None:
    services().tracer.annotate(product_id=product_id, owner=owner)


def _json(product: Product) -> dict[str, Any]:
    # Rendition URLs are presigned now, per read; the S3 client is made on the first one only.
    return product_json(product, rendition_url=services().rendition_url)


def _product_response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    _annotate(body["id"], body["owner"])
    return Response(body=body, status_code=status,
                    headers={"ETag": f'"{body["version"]}"', **headers})


@route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@route("/products", methods=["POST"])
def create_product() -> Response:
    who = caller(api.current_request)
    services().tracer.annotate(owner=who.sub)
    key = idempotency_key(api.current_request)
    from chalicelib.domain.commands import CreateProduct, parse_command

    raw = json_body(api.current_request, CreateProduct.MAX_BODY_BYTES)
    command = parse_command(CreateProduct, raw)
    created = services().products.create(who, command, raw_body=raw, idempotency_key=key)
    extra = {"Idempotent-Replayed": "true"} if created.replayed else {}
    return _product_response(_json(created.product), created.status,
                             Location=f"/products/{created.product.id}", **extra)


@route("/products", methods=["GET"])
def list_products() -> dict[str, Any]:
    owner = query(api.current_request, "owner")
    services().tracer.annotate(owner=owner)
    if owner is not None and not is_user_id(owner):
        raise errors.InvalidInput("owner", "must be a user id (the token's sub)")
    result = services().products.list(owner=owner, limit=limit(api.current_request), cursor=query(api.current_request, "cursor"))
    return {"items": [_json(p) for p in result.items], "next_cursor": result.next_cursor}


@route("/products/{product_id}", methods=["GET"])
def get_product(product_id: str) -> Response:
    _annotate(product_id)
    return _product_response(_json(services().products.get(product_id)))


@route("/products/{product_id}", methods=["PATCH"])
def update_product(product_id: str) -> Response:
    who = caller(api.current_request)
    _annotate(product_id, who.sub)
    expected = if_match(api.current_request, required=True)
    assert expected is not None  # required=True raised PreconditionRequired otherwise
    from chalicelib.domain.commands import UpdateProduct, parse_command

    command = parse_command(UpdateProduct, json_body(api.current_request, UpdateProduct.MAX_BODY_BYTES))
    product = services().products.update(who, product_id, command, expected)
    return _product_response(_json(product))


@route("/products/{product_id}", methods=["DELETE"])
def delete_product(product_id: str) -> Response:
    who = caller(api.current_request)
    _annotate(product_id, who.sub)
    services().products.delete(who, product_id, if_match(api.current_request, required=False))
    return Response(body="", status_code=204)
