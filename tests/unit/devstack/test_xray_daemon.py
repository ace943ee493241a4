"""Which datagrams the X-Ray daemon stand-in accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.xray_daemon import MAX_DOCUMENT_BYTES, MalformedDatagram, parse_datagram

HEADER = '{"format":"json","version":1}'
SEGMENT = {
    "name": "storefront",
    "id": "70de5b6f19ff9a0a",
    "trace_id": "1-581cf771-a006649127e371903a2de979",
    "start_time": 1.478293361271e9,
    "end_time": 1.478293361449e9,
    "annotations": {"order_id": "o-1"},
}


def datagram(document: Any, header: str = HEADER) -> bytes:
    body = document if isinstance(document, str) else json.dumps(document)
    return f"{header}\n{body}".encode()


def test_the_sdks_datagram_yields_its_document_unchanged() -> None:
    body = json.dumps(SEGMENT)

    assert parse_datagram(datagram(body)) == body


def test_an_in_progress_segment_and_a_streamed_subsegment_are_accepted() -> None:
    in_progress = {k: v for k, v in SEGMENT.items() if k != "end_time"} | {"in_progress": True}
    subsegment = SEGMENT | {"type": "subsegment", "parent_id": "53995c3f42cd8ad8", "id": "0123456789abcdef"}

    assert json.loads(parse_datagram(datagram(in_progress)))["in_progress"] is True
    assert json.loads(parse_datagram(datagram(subsegment)))["type"] == "subsegment"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps(SEGMENT).encode(), "no header line"),
        (datagram(SEGMENT, header='{"format":"xml","version":1}'), "unsupported header"),
        (datagram(SEGMENT, header="hello"), "header is not JSON"),
        (datagram("{not json"), "document is not JSON"),
        (datagram([SEGMENT]), "not a JSON object"),
        (datagram(SEGMENT | {"name": ""}), "no name"),
        (datagram(SEGMENT | {"id": "xyz"}), "16 hex digits"),
        (datagram(SEGMENT | {"trace_id": "abc"}), "trace_id"),
        (datagram(SEGMENT | {"start_time": "yesterday"}), "start_time"),
        (datagram({k: v for k, v in SEGMENT.items() if k != "end_time"}), "neither end_time nor in_progress"),
        (datagram(SEGMENT | {"metadata": {"blob": "x" * MAX_DOCUMENT_BYTES}}), "larger than 64 KB"),
    ],
)
def test_a_malformed_datagram_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedDatagram, match=reason):
        parse_datagram(data)
