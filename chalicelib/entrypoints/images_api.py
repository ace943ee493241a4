"""Product images over HTTP: request a presigned upload for a new image."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib.bootstrap import services
from chalicelib.entrypoints.http_common import caller, json_body, routes

__all__ = ["api"]

api = Blueprint(__name__)
route = routes(api)

@route("/products/{product_id}/images", methods=["POST"])
def request_image_upload(product_id: str) -> Response:
    who = caller(api.current_request)
    services().tracer.annotate(product_id=product_id, owner=who.sub)
    from chalicelib.domain.image_commands import RequestImageUpload, parse_upload_request

    command = parse_upload_request(json_body(api.current_request, RequestImageUpload.MAX_BODY_BYTES))
    ticket = services().images.request_upload(  # TooManyImages: a 409, as the error table says
        who, product_id, content_type=command.content_type, size_bytes=command.size_bytes)
    services().tracer.annotate(image_id=ticket.image_id)
    return Response(status_code=201, body={"image_id": ticket.image_id, "upload": ticket.upload.as_dict()})
