"""A small Chalice app for tests/integration/devstack/test_containers.py, imported by the
container processes the way the local stack's containers import app.py."""

from __future__ import annotations

import os
import time

from chalice import Chalice

app = Chalice(app_name="containers")
_invocations = 0


@app.lambda_function(name="echo")
def echo(event, context):
    global _invocations
    _invocations += 1
    return {"event": event, "pid": os.getpid(), "invocation": _invocations,
            "function_name": context.function_name, "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis()}


@app.lambda_function(name="boom")
def boom(event, context):
    if event.get("fail", True):
        raise ValueError("the handler refused this event")
    return {"pid": os.getpid()}


@app.lambda_function(name="slow")
def slow(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}


@app.lambda_function(name="unpicklable")
def unpicklable(event, context):
    return {"lock": __import__("threading").Lock()}
