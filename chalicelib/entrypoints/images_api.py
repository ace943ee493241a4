"""Product images over HTTP: request a presigned upload for a new image."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.bootstrap import services
from chalicelib.domain.images import TooManyImages
from chalicelib.entrypoints.http_common import caller, error_response, json_body, routes

__all__ = ["api"]

api = Blueprint(__name__)
route = routes(api)

_MAX_BODY_BYTES = 1024


@route("/products/{product_id}/images", methods=["POST"])
def request_image_upload(product_id: str) -> Response:
    who = caller(api.current_request)
    services().tracer.annotate(product_id=product_id, owner=who.sub)
    from chalicelib.domain.image_commands import parse_upload_request

    command = parse_upload_request(json_body(api.current_request, _MAX_BODY_BYTES))
    try:
        ticket = services().images.request_upload(
            who, product_id, content_type=command.content_type, size_bytes=command.size_bytes)
    except TooManyImages as exc:
        return error_response(409, "ConflictError", str(exc))
    services().tracer.annotate(image_id=ticket.image_id)
    return Response(status_code=201, body={
        "image_id": ticket.image_id,
        "upload": {"url": ticket.upload.url, "fields": dict(ticket.upload.fields)}})
