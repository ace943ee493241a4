"""The API's own description: `GET /openapi.json`."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.entrypoints.http_common import routes

__all__ = ["api"]

api = Blueprint(__name__)
route = routes(api)
_DOCUMENT: dict[str, Any] = {}


@route("/openapi.json", methods=["GET"])
def openapi_document() -> dict[str, Any]:
    if not _DOCUMENT:
        # Built on first request, once per container: pydantic and the models stay off the cold start.
        from chalicelib.entrypoints.openapi import document

        _DOCUMENT.update(document())
    return _DOCUMENT
