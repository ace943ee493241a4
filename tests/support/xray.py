"""Reading what the local stack's X-Ray holds, as the trace viewer does: through the X-Ray API."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from devstack.traces import segment_documents as assembled_documents

__all__ = ["segment_documents", "wait_for_segment"]


def segment_documents(xray: Any, since: datetime) -> list[dict[str, Any]]:
    """Every segment document of the traces that started after `since`, with the subsegments sent
    on their own put back under their parents, as X-Ray does (moto keeps them apart)."""
    ids = [s["Id"] for s in xray.get_trace_summaries(
        StartTime=since, EndTime=datetime.now(timezone.utc) + timedelta(minutes=1))["TraceSummaries"]]
    documents = []
    for start in range(0, len(ids), 5):  # BatchGetTraces takes at most 5 ids
        for trace in xray.batch_get_traces(TraceIds=ids[start:start + 5])["Traces"]:
            documents += assembled_documents(trace)
    return documents


def wait_for_segment(xray: Any, since: datetime, matches: Callable[[dict[str, Any]], bool], *,
                     timeout: float) -> dict[str, Any] | None:
    """The first segment document since `since` that `matches`, waiting up to `timeout` seconds
    for the segments to arrive (the daemon sends them in batches); None if none does."""
    deadline = time.monotonic() + timeout
    while True:
        for document in segment_documents(xray, since):
            if matches(document):
                return document
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.3)
