"""The X-Ray daemon stand-in between the real aws_xray_sdk and moto's X-Ray API."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_xray_sdk.core import AWSXRayRecorder
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

from devstack.xray_daemon import XRayDaemon

pytestmark = pytest.mark.timeout(60)

SAMPLE_EVERYTHING = {"version": 2, "default": {"fixed_target": 1, "rate": 1.0}, "rules": []}


@pytest.fixture
def daemon(aws: Callable[[str], Any]) -> Iterator[XRayDaemon]:
    daemon = XRayDaemon(aws("xray"))
    daemon.start()
    yield daemon
    daemon.stop()


def _recorder(daemon_address: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> AWSXRayRecorder:
    """A recorder as the app configures one: default UDP emitter, addressed like in Lambda."""
    # The SDK lets the environment override configure(); the test's address must win.
    monkeypatch.delenv("AWS_XRAY_DAEMON_ADDRESS", raising=False)
    monkeypatch.delenv("AWS_XRAY_CONTEXT_MISSING", raising=False)
    recorder = AWSXRayRecorder()
    recorder.configure(
        sampler=LocalSampler(SAMPLE_EVERYTHING), daemon_address=daemon_address, context_missing="IGNORE_ERROR",
        plugins=(), **options,
    )
    return recorder


def _trace_segment(recorder: AWSXRayRecorder, name: str, annotations: dict[str, str]) -> str:
    segment = recorder.begin_segment(name)
    for key, value in annotations.items():
        segment.put_annotation(key, value)
    recorder.end_segment()
    return str(segment.trace_id)


def _documents(xray: Any, trace_id: str, count: int = 1, timeout: float = 10) -> list[dict]:
    """The trace's segment documents once X-Ray holds ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        traces = xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
        documents = [json.loads(s["Document"]) for t in traces for s in t["Segments"]]
        if len(documents) >= count or time.monotonic() > deadline:
            return documents
        time.sleep(0.05)


def test_a_segment_the_sdk_emits_reaches_xray_with_its_annotations(
    daemon: XRayDaemon, aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _recorder(daemon.address, monkeypatch)

    trace_id = _trace_segment(recorder, "storefront-api", {"order_id": "o-123", "owner": "alice"})
    documents = _documents(aws("xray"), trace_id)

    assert [(d["name"], d["annotations"]) for d in documents] == [
        ("storefront-api", {"order_id": "o-123", "owner": "alice"})
    ]
    assert daemon.stats().forwarded >= 1


def test_malformed_datagrams_are_counted_and_later_segments_still_arrive(
    daemon: XRayDaemon, aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = daemon.address.split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"not the daemon protocol", (host, int(port)))
        sender.sendto(b'{"format": "json", "version": 1}\n{"name": "no ids"}', (host, int(port)))

    trace_id = _trace_segment(_recorder(daemon.address, monkeypatch), "after-garbage", {"job_id": "j-9"})
    documents = _documents(aws("xray"), trace_id)

    assert [d["annotations"] for d in documents] == [{"job_id": "j-9"}]
    assert daemon.stats().malformed == 2


class _RecordingXRay:
    """The real client, noting the size of each PutTraceSegments batch."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.batch_sizes: list[int] = []

    def put_trace_segments(self, TraceSegmentDocuments: list[str]) -> dict:  # noqa: N803 - boto3's name
        self.batch_sizes.append(len(TraceSegmentDocuments))
        return self._client.put_trace_segments(TraceSegmentDocuments=TraceSegmentDocuments)


def test_a_burst_larger_than_one_batch_is_forwarded_in_full_in_batches_xray_accepts(
    aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    xray = _RecordingXRay(aws("xray"))
    # Threshold 0: each subsegment is sent as a document of its own as soon as it ends.
    with XRayDaemon(xray) as daemon:
        recorder = _recorder(daemon.address, monkeypatch, streaming_threshold=0)
        segment = recorder.begin_segment("burst")
        for i in range(120):
            subsegment = recorder.begin_subsegment(f"step-{i}")
            subsegment.put_annotation("image_id", f"i-{i}")
            recorder.end_subsegment()
        recorder.end_segment()

        documents = _documents(aws("xray"), segment.trace_id, count=121)

    assert len(documents) == 121
    assert {d["annotations"]["image_id"] for d in documents if d["name"].startswith("step-")} == {
        f"i-{i}" for i in range(120)
    }
    assert sum(xray.batch_sizes) == 121 and max(xray.batch_sizes) <= 50
    assert daemon.stats().dropped == 0


def test_stopping_forwards_what_the_daemon_still_holds(
    aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flush interval far beyond the test: only stop() can have forwarded the segment.
    daemon = XRayDaemon(aws("xray"), flush_interval=3600)
    daemon.start()
    trace_id = _trace_segment(_recorder(daemon.address, monkeypatch), "last-words", {"product_id": "p-7"})
    deadline = time.monotonic() + 10
    while daemon.stats().pending < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _documents(aws("xray"), trace_id, timeout=0) == []

    daemon.stop()

    assert [d["annotations"] for d in _documents(aws("xray"), trace_id, timeout=0)] == [{"product_id": "p-7"}]
