"""The segments the local stack writes for each invocation, as Lambda's active tracing does."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aws_xray_sdk.core import xray_recorder

from chalicelib.adapters.tracing import XRayTracer
from devstack.lambda_tracing import FunctionSegment, FunctionTracing, sender_trace_headers, use_lambda_context


def _header(n: int) -> str:
    return f"Root=1-6b046abd-{n:024x};Parent={n:016x};Sampled=1"


def _sqs_record(*, system: str | None = None, attribute: str | None = None) -> dict[str, Any]:
    return {"eventSource": "aws:sqs", "attributes": {"AWSTraceHeader": system} if system else {},
            "messageAttributes": {"AWSTraceHeader": {"stringValue": attribute, "dataType": "String"}}
            if attribute else {}}


def test_an_http_invocation_continues_the_callers_trace():
    segment = FunctionSegment("api_handler", trace_header=_header(1))

    document = segment.document()
    assert (document["trace_id"], document["parent_id"]) == ("1-6b046abd-000000000000000000000001", f"{1:016x}")
    assert document["origin"] == "AWS::Lambda::Function"
    assert segment.header == f"Root={document['trace_id']};Parent={document['id']};Sampled=1"
    assert "links" not in document


def test_an_sqs_batch_starts_its_own_trace_linked_to_each_sender_once():
    event = {"Records": [_sqs_record(system=_header(1)), _sqs_record(system=_header(2)),
                         _sqs_record(system=_header(1)), _sqs_record()]}

    document = FunctionSegment("consume_orders", links=sender_trace_headers(event)).document()

    assert document["trace_id"] not in ("1-6b046abd-000000000000000000000001", "1-6b046abd-000000000000000000000002")
    assert "parent_id" not in document
    assert document["links"] == [{"trace_id": "1-6b046abd-000000000000000000000001", "id": f"{1:016x}"},
                                 {"trace_id": "1-6b046abd-000000000000000000000002", "id": f"{2:016x}"}]


def test_a_segment_links_to_at_most_twenty_traces_as_xray_allows():
    assert len(FunctionSegment("import_chunk", links=[_header(n) for n in range(1, 26)]).document()["links"]) == 20


def test_a_sender_through_sns_is_found_by_its_message_attribute_as_moto_drops_the_system_one():
    event = {"Records": [_sqs_record(attribute=_header(3)), _sqs_record(system=_header(4), attribute=_header(5))]}

    assert sender_trace_headers(event) == [_header(3), _header(4)]


def test_a_cold_start_has_an_initialization_before_the_invocation_and_a_warm_one_only_the_invocation():
    cold = FunctionSegment("consume_orders")
    cold.initialization = (cold.start, cold.start + 0.5)
    warm = FunctionSegment("consume_orders")

    cold_parts = [(s["name"], s["start_time"]) for s in cold.document(end=cold.start + 1)["subsegments"]]
    assert cold_parts == [("Initialization", cold.start), ("Invocation", cold.start + 0.5)]
    assert [s["name"] for s in warm.document()["subsegments"]] == ["Invocation"]


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """What the X-Ray daemon would receive on UDP."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    previous = (xray_recorder.context, xray_recorder.emitter, xray_recorder.streaming_threshold)
    host, port = receiver.getsockname()
    use_lambda_context(f"{host}:{port}")
    try:
        yield receiver
    finally:
        xray_recorder.configure(context=previous[0], emitter=previous[1], streaming_threshold=previous[2])
        receiver.close()


def _received(receiver: socket.socket, count: int) -> list[dict[str, Any]]:
    return [json.loads(receiver.recv(65535).split(b"\n", 1)[1]) for _ in range(count)]


def test_in_a_thread_the_apps_subsegments_join_the_function_segment(daemon):
    tracing = FunctionTracing("%s:%d" % daemon.getsockname())
    tracer = XRayTracer(service="storefront")

    with tracing.in_thread("api_handler", trace_header=_header(7)) as segment:
        with tracer.invocation("GET /products") as span:
            assert span.trace_id == segment.trace_id

    documents = {d["name"]: d for d in _received(daemon, 2)}
    assert documents["GET /products"]["parent_id"] == documents["api_handler"]["id"]
    assert documents["api_handler"]["parent_id"] == f"{7:016x}"


def test_invocations_running_at_once_each_need_a_container_as_in_lambda(daemon):
    tracing = FunctionTracing("%s:%d" % daemon.getsockname())
    both_running = threading.Barrier(2, timeout=10)

    def invoke() -> None:
        with tracing.in_thread("storefront-dev-work"):
            both_running.wait()

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    with tracing.in_thread("storefront-dev-work"):
        pass

    cold = [any(s["name"] == "Initialization" for s in d["subsegments"]) for d in _received(daemon, 3)]
    assert cold == [True, True, False]


def test_a_failed_invocation_marks_its_segment_a_fault(daemon):
    tracing = FunctionTracing("%s:%d" % daemon.getsockname())

    with pytest.raises(RuntimeError), tracing.in_thread("storefront-dev-work"):
        raise RuntimeError("boom")

    assert _received(daemon, 1)[0]["fault"] is True
