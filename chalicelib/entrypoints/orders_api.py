"""Orders over HTTP: accept (validate, record, enqueue: 202), read, list, cancel (202)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.bootstrap import services
from chalicelib.entrypoints.http_common import caller, idempotency_key, json_body, limit, no_body, query, routes
from chalicelib.entrypoints.representations import order_json

__all__ = ["api"]

api = Blueprint(__name__)
route = routes(api)


@route("/orders", methods=["POST"])
def place_order() -> Response:
    from chalicelib.domain.commands import PlaceOrder, parse_command

    who = caller(api.current_request)
    key = idempotency_key(api.current_request)
    raw = json_body(api.current_request, PlaceOrder.MAX_BODY_BYTES)
    command = parse_command(PlaceOrder, raw)
    tracer = services().tracer
    tracer.annotate(product_id=command.product_id, owner=who.sub)
    placed = services().orders.place(who, command, raw_body=raw, idempotency_key=key)
    tracer.annotate(order_id=placed.body["order_id"])
    headers: dict[str, str | list[str]] = {"Location": f"/orders/{placed.body['order_id']}"}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(body=placed.body, status_code=placed.status, headers=headers)


@route("/orders/{order_id}", methods=["GET"])
def get_order(order_id: str) -> dict[str, Any]:
    who = caller(api.current_request)
    services().tracer.annotate(order_id=order_id, owner=who.sub)
    return order_json(services().orders.get(who, order_id))


@route("/orders", methods=["GET"])
def list_orders() -> dict[str, Any]:
    who = caller(api.current_request)
    services().tracer.annotate(owner=who.sub)
    result = services().orders.list(who, status=query(api.current_request, "status"),
                                    limit=limit(api.current_request), cursor=query(api.current_request, "cursor"))
    return {"items": [order_json(order) for order in result.items], "next_cursor": result.next_cursor}


@route("/orders/{order_id}/cancel", methods=["POST"])
def cancel_order(order_id: str) -> Response:
    who = caller(api.current_request)
    no_body(api.current_request, "POST an empty body to cancel the order")
    services().tracer.annotate(order_id=order_id, owner=who.sub)
    return Response(body=order_json(services().orders.cancel(who, order_id)), status_code=202)
