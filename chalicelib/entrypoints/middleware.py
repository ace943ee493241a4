"""What every invocation gets: a request id, a trace, structured logs, and no stack traces leaked."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable

from chalice.app import Request, Response

from chalicelib.logs import append_keys, clear_keys, logger
from chalicelib.bootstrap import services
from chalicelib.entrypoints.cors import cors_headers

__all__ = ["http_middleware", "event_middleware"]

_REQUEST_ID = re.compile(r"^[\w.:-]{1,128}\Z", re.ASCII)  # echoed into a header


def _request_id(request: Request) -> str:
    offered: str = request.headers.get("x-request-id", "")
    if _REQUEST_ID.match(offered):
        return offered  # lets a client correlate its own logs with ours
    given: str | None = (request.context or {}).get("requestId")
    return given or str(uuid.uuid4())


def http_middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
    started = time.perf_counter()
    request_id = _request_id(request)
    context = request.context or {}
    route = f"{request.method} {context.get('resourcePath', request.path)}"
    tracer = services().tracer
    with tracer.invocation(route) as span:
        append_keys(request_id=request_id, trace_id=span.trace_id, route=route)
        try:
            response = get_response(request)
            span.set_status(response.status_code)
        finally:
            clear_keys()
    response.headers["X-Request-Id"] = request_id
    response.headers.update(cors_headers(request, response, services().settings.cors_allow_origins))
    if span.trace_id:
        response.headers["X-Amzn-Trace-Id"] = f"Root={span.trace_id}"
    logger.info("request", extra={
        "request_id": request_id, "trace_id": span.trace_id, "route": route,
        "status": response.status_code, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    return response


def event_middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """For queue, topic and schedule handlers: log context, and a span per invocation.

    Lambda opens the invocation's segment (for an SQS batch, a new trace linked to the traces of
    its records' senders); entrypoints/sqs_batches.py adds a subsegment per record.
    """
    context = getattr(event, "context", None)
    function = getattr(context, "function_name", None) or "storefront"
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    append_keys(request_id=request_id, function=function)
    # "<app>-<stage>-<handler>": a handler's name is a Python identifier, so it holds no "-".
    name = f"## {function.rsplit('-', 1)[-1]}"
    try:
        with services().tracer.invocation(name) as span:
            append_keys(trace_id=span.trace_id)
            return get_response(event)
    except Exception:
        logger.exception("invocation failed")
        raise
    finally:
        clear_keys()
