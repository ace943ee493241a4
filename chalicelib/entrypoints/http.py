"""HTTP routes: translate a request into a service call and the result into a response."""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable

from chalice import Blueprint, Response

from chalicelib.bootstrap import container
from chalicelib.domain import errors
from chalicelib.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from chalicelib.domain.idempotency import validate_key
from chalicelib.domain.identity import Caller
from chalicelib.entrypoints.representations import product_json

__all__ = ["http", "error_response"]

http = Blueprint(__name__)

_IF_MATCH = re.compile(r'^(?:W/)?"?([1-9][0-9]{0,17})"?\Z')
_OWNER = re.compile(r"^[\w-]{1,128}\Z", re.ASCII)
_LIMIT_MAX = 100


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """Chalice's error shape, for statuses Chalice has no exception class for."""
    return Response(body={"Code": code, "Message": message}, status_code=status, headers=headers or {})


_ERRORS: list[tuple[type[Exception], int, str]] = [
    (errors.InvalidInput, 400, "BadRequestError"),
    (errors.Unauthenticated, 401, "UnauthorizedError"),
    (errors.Forbidden, 403, "ForbiddenError"),
    (errors.NotFound, 404, "NotFoundError"),
    (errors.IdempotencyConflict, 409, "ConflictError"),
    (errors.VersionMismatch, 412, "PreconditionFailedError"),
    (errors.PreconditionRequired, 428, "PreconditionRequiredError"),
    (errors.DependencyUnavailable, 503, "ServiceUnavailableError"),
]


def _answers_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's exceptions into Chalice-shaped error responses."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except errors.StorefrontError as exc:
            for kind, status, code in _ERRORS:
                if isinstance(exc, kind):
                    headers = {"WWW-Authenticate": 'Bearer realm="storefront"'} if status == 401 else None
                    return error_response(status, code, str(exc), headers)
            raise

    return wrapper


def route(path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        return http.route(path, **options)(_answers_errors(view))

    return register


def _header(name: str) -> str | None:
    return http.current_request.headers.get(name)


def _caller() -> Caller:
    authorization = _header("authorization")
    if not authorization:
        raise errors.Unauthenticated("an Authorization: Bearer <ID token> header is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated("the Authorization header must be 'Bearer <ID token>'")
    return container().verifier.verify(token.strip())


def _json_body() -> Any:
    from chalicelib.domain.commands import MAX_BODY_BYTES

    raw = http.current_request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise errors.InvalidInput("body", f"must be at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise errors.InvalidInput("body", "a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput("body", f"is not valid JSON ({exc})") from None


def _query(name: str) -> str | None:
    return (http.current_request.query_params or {}).get(name)


def _limit() -> int:
    value = _query("limit")
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= _LIMIT_MAX:
        raise errors.InvalidInput("limit", f"must be an integer from 1 to {_LIMIT_MAX}")
    return int(value)


def _if_match(required: bool) -> int | None:
    value = _header("if-match")
    if value is None:
        if required:
            raise errors.PreconditionRequired(
                'If-Match: "<version>" is required; read the product to learn its version')
        return None
    match = _IF_MATCH.match(value.strip())
    if not match:
        raise errors.InvalidInput("If-Match", 'must be the product\'s version, e.g. "3"')
    return int(match.group(1))


def _annotate(product_id: str, owner: str | None = None) -> None:
    container().tracer.annotate(product_id=product_id, owner=owner)


def _product_response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    _annotate(body["id"], body["owner"])
    return Response(body=body, status_code=status,
                    headers={"ETag": f'"{body["version"]}"', **headers})


@route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@route("/products", methods=["POST"])
def create_product() -> Response:
    caller = _caller()
    container().tracer.annotate(owner=caller.sub)
    key = validate_key(_header(IDEMPOTENCY_HEADER))
    from chalicelib.domain.commands import CreateProduct, parse_command

    raw = _json_body()
    command = parse_command(CreateProduct, raw)
    created = container().products.create(caller, command, raw_body=raw, idempotency_key=key)
    extra = {"Idempotent-Replayed": "true"} if created.replayed else {}
    return _product_response(created.body, created.status,
                             Location=f"/products/{created.body['id']}", **extra)


@route("/products", methods=["GET"])
def list_products() -> dict[str, Any]:
    owner = _query("owner")
    container().tracer.annotate(owner=owner)
    if owner is not None and not _OWNER.match(owner):
        raise errors.InvalidInput("owner", "must be a user id (the token's sub)")
    result = container().products.list(owner=owner, limit=_limit(), cursor=_query("cursor"))
    return {"items": [product_json(p) for p in result.items], "next_cursor": result.next_cursor}


@route("/products/{product_id}", methods=["GET"])
def get_product(product_id: str) -> Response:
    _annotate(product_id)
    return _product_response(product_json(container().products.get(product_id)))


@route("/products/{product_id}", methods=["PATCH"])
def update_product(product_id: str) -> Response:
    caller = _caller()
    _annotate(product_id, caller.sub)
    expected = _if_match(required=True)
    from chalicelib.domain.commands import UpdateProduct, parse_command

    command = parse_command(UpdateProduct, _json_body())
    product = container().products.update(caller, product_id, command, expected)
    return _product_response(product_json(product))


@route("/products/{product_id}", methods=["DELETE"])
def delete_product(product_id: str) -> Response:
    caller = _caller()
    _annotate(product_id, caller.sub)
    container().products.delete(caller, product_id, _if_match(required=False))
    return Response(body="", status_code=204)
