"""A seller's sales over HTTP: the read model kept by domain events (entrypoints/sales_events.py)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.bootstrap import services
from chalicelib.entrypoints.http_common import caller, routes
from chalicelib.entrypoints.representations import sales_json

__all__ = ["api"]

api = Blueprint(__name__)
route = routes(api)


@route("/sellers/me/sales", methods=["GET"])
def my_sales() -> dict[str, Any]:
    """One query of the read model; it trails the orders by the events' delivery (`as_of`)."""
    who = caller(api.current_request)
    services().tracer.annotate(owner=who.sub)
    return sales_json(services().sales.report(who.sub))
