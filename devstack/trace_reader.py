"""Reads traces through the X-Ray API only (GetTraceSummaries + BatchGetTraces), local or real.

The same reader serves the local stack (moto's X-Ray) and a real account (`make traces-ui
AWS_PROFILE=...`): nothing here knows which one it talks to.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from devstack.traces import Trace, assemble_all, handler_name

__all__ = ["TraceReader", "Pricing", "xray_client"]

_BATCH = 5  # BatchGetTraces takes at most 5 ids
# A trace whose last segment ended this long ago is taken as complete and is not fetched again.
_SETTLED_SECONDS = 30.0


def _started(trace_id: str) -> int:
    try:
        return int(trace_id.split("-")[1], 16)
    except (IndexError, ValueError):
        return 0


class TraceReader:
    """Recent traces, assembled; complete traces are kept so a page load fetches only new ones."""

    def __init__(self, xray: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._xray = xray
        self._clock = clock
        self._settled: dict[str, Trace] = {}
        self._lock = threading.Lock()

    def recent(self, *, minutes: int = 60, limit: int = 1000) -> list[Trace]:
        """Traces that started in the last `minutes`, newest first (at most `limit`)."""
        end = datetime.now(timezone.utc)
        kwargs: dict[str, Any] = {"StartTime": end - timedelta(minutes=minutes),
                                  "EndTime": end + timedelta(minutes=1), "Sampling": False}
        summaries: list[dict[str, Any]] = []
        while True:
            page = self._xray.get_trace_summaries(**kwargs)
            summaries += page.get("TraceSummaries", [])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        # A trace id carries its start second (1-<hex epoch>-<random>): only the newest are fetched.
        ids = sorted(dict.fromkeys(s["Id"] for s in summaries), key=_started, reverse=True)[:limit]
        traces = self._fetch(ids)
        return sorted(traces, key=lambda t: t.start, reverse=True)

    def get(self, trace_id: str) -> Trace | None:
        found = self._fetch([trace_id])
        return found[0] if found and found[0].spans else None

    def _fetch(self, ids: list[str]) -> list[Trace]:
        with self._lock:
            known = {i: self._settled[i] for i in ids if i in self._settled}
        missing = [i for i in ids if i not in known]
        raws: list[dict[str, Any]] = []
        for start in range(0, len(missing), _BATCH):
            page: dict[str, Any] = {"TraceIds": missing[start:start + _BATCH]}
            while True:
                answer = self._xray.batch_get_traces(**page)
                raws += answer.get("Traces", [])
                if not answer.get("NextToken"):
                    break
                page["NextToken"] = answer["NextToken"]
        fetched = {trace.id: trace for trace in assemble_all(raws)}
        now = self._clock()
        with self._lock:
            for trace_id, trace in fetched.items():
                if trace.spans and now - trace.end > _SETTLED_SECONDS:
                    self._settled[trace_id] = trace
        return [t for t in (known.get(i) or fetched.get(i) for i in ids) if t is not None]


class Pricing:
    """A function's configured memory and whether it is the API, from .chalice/config.json."""

    def __init__(self, stage: str = "dev") -> None:
        from devstack.chalice_config import StageConfig

        self._config = StageConfig(stage)

    def _handler(self, function: str) -> str:
        return handler_name(function, app=self._config.app_name, stage=self._config.stage)

    def memory_mb(self, function: str) -> int:
        return self._config.function_settings(self._handler(function)).memory_mb

    def is_api(self, function: str) -> bool:
        return self._handler(function) == "api_handler"


def xray_client(*, endpoint_url: str | None, region: str, profile: str | None = None) -> Any:
    """An X-Ray client: the local stack's (dummy credentials) or a real account's (profile)."""
    import boto3

    if endpoint_url:
        return boto3.client("xray", endpoint_url=endpoint_url, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.Session(profile_name=profile, region_name=region).client("xray")


class StackXRay:
    """The local stack's X-Ray API read in its own process (moto's backend), answering the two
    calls TraceReader makes as boto3's client does (the fields it reads).

    The console runs in the process that holds moto: over HTTP a first load of 1,000 traces took
    200 BatchGetTraces calls, 3 s on an idle stack and over 10 s on a busy one (measured, the
    X-Ray server sharing the process's one interpreter with every poller); read here, the calls
    cost what moto's lookups cost. A real account's page uses `xray_client`.
    """

    def __init__(self, account_id: str, region: str) -> None:
        self._account_id = account_id
        self._region = region

    def _backend(self) -> Any:
        from moto.xray.models import xray_backends

        return xray_backends[self._account_id][self._region]

    def get_trace_summaries(self, *, StartTime: datetime, EndTime: datetime,  # noqa: N803 - boto3's names
                            **_: Any) -> dict[str, Any]:
        # As moto's GetTraceSummaries handler reads the times (whole seconds, naive local time).
        start, end = (datetime.fromtimestamp(int(t.timestamp())) for t in (StartTime, EndTime))
        for attempt in range(3):
            try:
                summary: dict[str, Any] = self._backend().get_trace_summary(start, end, None)
                return summary
            except RuntimeError:  # a segment's new trace arrived while moto iterated its traces
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def batch_get_traces(self, *, TraceIds: list[str], **_: Any) -> dict[str, Any]:  # noqa: N803
        traces: dict[str, Any] = self._backend().get_trace_ids(TraceIds)
        return traces
