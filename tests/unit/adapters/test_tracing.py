"""The X-Ray tracer outside Lambda (the local stack): continued traces, linked traces, cold starts."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.tracing import XRayTracer


class CapturingEmitter:
    """Keeps the documents the SDK would send to the daemon."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.documents.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address: str | None) -> None:
        pass

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[XRayTracer, CapturingEmitter]]:
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    tracer = XRayTracer(service="storefront")
    from aws_xray_sdk.core import xray_recorder

    emitter = CapturingEmitter()
    previous = xray_recorder._emitter
    xray_recorder.configure(emitter=emitter)
    try:
        yield tracer, emitter
    finally:
        xray_recorder.configure(emitter=previous)


def _header(n: int) -> str:
    return f"Root=1-6b046abd-{n:024x};Parent={n:016x};Sampled=1"


def _function() -> str:
    return f"storefront-test-{uuid.uuid4().hex[:8]}"  # the tracer remembers which functions ran


def test_an_http_invocation_continues_the_callers_trace(traced):
    tracer, emitter = traced
    with tracer.invocation("GET /health", function=_function(), trace_header=_header(1)) as span:
        assert span.trace_id == "1-6b046abd-000000000000000000000001"

    [segment] = emitter.documents
    assert (segment["trace_id"], segment["parent_id"]) == ("1-6b046abd-000000000000000000000001", f"{1:016x}")
    assert "links" not in segment


def test_a_queue_invocation_starts_its_own_trace_linked_to_each_sender_once(traced):
    tracer, emitter = traced
    with tracer.invocation("## consume_orders", function=_function(), links=[_header(1), _header(2), _header(1)]):
        pass

    [segment] = emitter.documents
    assert segment["trace_id"] not in ("1-6b046abd-000000000000000000000001", "1-6b046abd-000000000000000000000002")
    assert "parent_id" not in segment
    assert segment["origin"] == "AWS::Lambda::Function"
    assert segment["links"] == [{"trace_id": "1-6b046abd-000000000000000000000001", "id": f"{1:016x}"},
                                {"trace_id": "1-6b046abd-000000000000000000000002", "id": f"{2:016x}"}]


def test_a_segment_links_to_at_most_twenty_traces_as_xray_allows(traced):
    tracer, emitter = traced
    with tracer.invocation("## import_chunk", function=_function(), links=[_header(n) for n in range(1, 26)]):
        pass

    assert len(emitter.documents[0]["links"]) == 20


def _cold_marks(emitter: CapturingEmitter) -> list[Any]:
    return [d["subsegments"][0].get("annotations", {}).get("cold_start") for d in emitter.documents]


def test_an_invocation_reuses_an_idle_container_and_only_a_new_one_is_a_cold_start(traced):
    tracer, emitter = traced
    function, other = _function(), _function()
    for name in (function, function, other):
        with tracer.invocation("## work", function=name):
            pass

    assert _cold_marks(emitter) == [True, None, True]


def test_invocations_running_at_once_each_need_a_container_as_in_lambda(traced):
    tracer, emitter = traced
    function = _function()
    both_running = threading.Barrier(2, timeout=10)

    def invoke(name: str) -> None:
        with tracer.invocation(name, function=function):
            both_running.wait()

    threads = [threading.Thread(target=invoke, args=(f"## at once {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    with tracer.invocation("## later", function=function):
        pass

    marks = {d["subsegments"][0]["name"]: d["subsegments"][0].get("annotations", {}).get("cold_start")
             for d in emitter.documents}
    assert marks == {"## at once 0": True, "## at once 1": True, "## later": None}


def test_an_exception_marks_the_invocation_a_fault_with_its_cause(traced):
    tracer, emitter = traced
    with pytest.raises(RuntimeError):
        with tracer.invocation("## cleanup", function=_function()):
            raise RuntimeError("disk on fire")

    handler = emitter.documents[0]["subsegments"][0]
    assert handler["fault"] is True
    assert handler["cause"]["exceptions"][0]["message"] == "disk on fire"
