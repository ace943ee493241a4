"""What every HTTP route shares: error answers, auth, and parsing of bodies, headers and parameters.

Routes live in one Blueprint per resource (products_api, orders_api, ...): each stays a short file a
feature can own, and app.py registers them all.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Mapping

from chalice.app import Blueprint, Response
from chalice.app import Request

from chalicelib.bootstrap import services
from chalicelib.domain import errors
from chalicelib.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from chalicelib.domain.idempotency import validate_key
from chalicelib.domain.identity import Caller
from chalicelib.entrypoints.errors import answer_for

__all__ = ["error_response", "routes", "caller", "json_body", "header", "query", "limit", "if_match",
           "idempotency_key", "LIMIT_DEFAULT", "LIMIT_MAX", "IF_MATCH_REGEX"]

# A version as the ETag gave it ("3"), weak or bare (W/"3", 3) read the same. Unanchored, one
# dialect for Python and the OpenAPI document.
IF_MATCH_REGEX = r'(W/)?"?[1-9][0-9]{0,17}"?'
_IF_MATCH = re.compile(rf"^{IF_MATCH_REGEX}\Z")
LIMIT_DEFAULT, LIMIT_MAX = 20, 100  # items of a listing page, ?limit= (the OpenAPI document reads these)


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """Chalice's error shape, for statuses Chalice has no exception class for."""
    answer_headers: dict[str, str | list[str]] = dict(headers or {})
    return Response(body={"Code": code, "Message": message}, status_code=status, headers=answer_headers)


def _answers_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's exceptions into Chalice-shaped error responses."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except errors.StorefrontError as exc:
            answer = answer_for(exc)
            if answer is None:
                raise
            return error_response(answer.status, answer.code, str(exc), answer.headers)

    return wrapper


def routes(blueprint: Blueprint) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """`blueprint.route`, with the project's exceptions answered as Chalice-shaped errors."""

    def route(path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            registered: Callable[..., Any] = blueprint.route(path, **options)(_answers_errors(view))
            return registered

        return register

    return route


def header(request: Request, name: str) -> str | None:
    return request.headers.get(name)


def caller(request: Request) -> Caller:
    """The verified caller; raises Unauthenticated (401)."""
    authorization = header(request, "authorization")
    if not authorization:
        raise errors.Unauthenticated("an Authorization: Bearer <ID token> header is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated("the Authorization header must be 'Bearer <ID token>'")
    return services().verifier.verify(token.strip())


def _number(text: str) -> float | int:
    """A JSON number with a fraction or exponent: 2.0 and 2e0 are the integer 2, as JSON Schema
    says (the OpenAPI document's "integer" admits them, and clients that only have floats send them)."""
    value = float(text)
    # Beyond 2**53 a float no longer holds every integer: left a float, it fails "must be an integer".
    return int(value) if value.is_integer() and abs(value) <= 2**53 else value


def no_body(request: Request, what: str) -> None:
    """For a POST that takes no fields: no body, or `{}`; anything else is a 400 naming `body`
    (a body of whitespace is not JSON, so it is a 400 like any other text)."""
    if request.raw_body and json_body(request, 1024) != {}:
        raise errors.InvalidInput("body", f"takes no fields: {what}")


def json_body(request: Request, max_bytes: int) -> Any:
    """The parsed JSON body; raises InvalidInput("body") when absent, too large or malformed."""
    raw = request.raw_body or b""
    if len(raw) > max_bytes:
        raise errors.InvalidInput("body", f"must be at most {max_bytes} bytes")
    if not raw.strip():
        raise errors.InvalidInput("body", "a JSON object is required")
    try:
        return json.loads(raw, parse_float=_number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput("body", f"is not valid JSON ({exc})") from None


def query(request: Request, name: str) -> str | None:
    params = request.query_params
    value: str | None = params.get(name) if params is not None else None
    return value


def limit(request: Request) -> int:
    value = query(request, "limit")
    if value is None:
        return LIMIT_DEFAULT
    # isdigit() alone admits "²" (int() then raises: a 500) and other scripts' digits.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= LIMIT_MAX:
        raise errors.InvalidInput("limit", f"must be an integer from 1 to {LIMIT_MAX}")
    return int(value)


def if_match(request: Request, required: bool) -> int | None:
    """The version named by If-Match; raises PreconditionRequired (428) when required and absent."""
    value = header(request, "if-match")
    if value is None:
        if required:
            raise errors.PreconditionRequired(
                'If-Match: "<version>" is required; read the product to learn its version')
        return None
    value = value.strip()
    if not _IF_MATCH.match(value):
        raise errors.InvalidInput("If-Match", 'must be the product\'s version, e.g. "3"')
    return int(value.removeprefix("W/").strip('"'))


def idempotency_key(request: Request) -> str | None:
    return validate_key(header(request, IDEMPOTENCY_HEADER))
