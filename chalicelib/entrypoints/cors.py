"""CORS for the configured browser origins only (Settings.cors_allow_origins; none by default).

An allowed Origin gets Access-Control-Allow-Origin naming it (never "*": the API takes bearer
tokens) on every answer, and its preflight (OPTIONS) the methods and headers the path accepts.
Any other Origin gets no CORS header at all, so the browser keeps the answer from its page.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, Response
from chalice.app import Request

__all__ = ["cors_headers", "add_preflight_routes", "ALLOWED_HEADERS", "EXPOSED_HEADERS"]

ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-Id")
EXPOSED_HEADERS = ("ETag", "Location", "Idempotent-Replayed", "Retry-After", "X-Request-Id")
_MAX_AGE_SECONDS = "600"


def cors_headers(request: Request, response: Response, allowed_origins: frozenset[str]) -> dict[str, str]:
    """The CORS headers this request's answer carries: none unless its Origin is allowed."""
    origin = request.headers.get("origin")
    # Vary even when refused: a cache must not serve one origin's answer to another.
    headers = {"Vary": "Origin"} if origin else {}
    if origin is None or origin.rstrip("/") not in allowed_origins:
        return headers
    headers.update({"Access-Control-Allow-Origin": origin,
                    "Access-Control-Expose-Headers": ", ".join(EXPOSED_HEADERS)})
    if request.method == "OPTIONS" and "Allow" in response.headers:
        headers.update({"Access-Control-Allow-Methods": str(response.headers["Allow"]),
                        "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                        "Access-Control-Max-Age": _MAX_AGE_SECONDS})
    return headers


def add_preflight_routes(app: Chalice) -> None:
    """An OPTIONS route on every path, so API Gateway hands browsers' preflights to the app.

    Call after every blueprint is registered. Chalice's own `cors=` is one static origin per route,
    answered by API Gateway itself; an allow-list read from the environment needs the app.
    """
    for path, methods in list(app.routes.items()):
        allowed = ", ".join(sorted({*methods, "OPTIONS"}))

        def preflight(allow: str = allowed, **_: Any) -> Response:
            return Response(body="", status_code=204, headers={"Allow": allow})

        app.route(path, methods=["OPTIONS"], name=f"preflight {path}")(preflight)
