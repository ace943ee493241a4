"""The local stack's own HTTP endpoint (at `trace_viewer`): recent traces, schedules, fire-now.

Traces are read only through the X-Ray API (GetTraceSummaries + BatchGetTraces), so what is shown
is what X-Ray holds. moto returns summaries without annotations, so they are read from the full
segment documents here.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Console", "recent_traces"]

log = logging.getLogger("devstack.console")


def recent_traces(xray: Any, *, minutes: int = 60, limit: int = 200) -> list[dict[str, Any]]:
    """Traces of the last `minutes`, newest first: id, start, duration, entry point, status, annotations."""
    end = datetime.now(timezone.utc)
    ids: list[str] = []
    kwargs: dict[str, Any] = {"StartTime": end - timedelta(minutes=minutes), "EndTime": end + timedelta(minutes=1)}
    while len(ids) < limit:
        page = xray.get_trace_summaries(**kwargs)
        ids.extend(s["Id"] for s in page.get("TraceSummaries", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    traces = []
    for start in range(0, min(len(ids), limit), 5):  # BatchGetTraces takes at most 5 ids
        for trace in xray.batch_get_traces(TraceIds=ids[start:start + 5]).get("Traces", []):
            traces.append(_summarise(trace))
    return sorted(traces, key=lambda t: t["start"], reverse=True)


def _walk(entity: dict[str, Any]):
    yield entity
    for child in entity.get("subsegments", []):
        yield from _walk(child)


def _summarise(trace: dict[str, Any]) -> dict[str, Any]:
    segments = [json.loads(s["Document"]) for s in trace.get("Segments", [])]
    roots = [s for s in segments if not s.get("parent_id")] or segments
    first = min(roots, key=lambda s: s.get("start_time", 0))
    annotations: dict[str, Any] = {}
    error = fault = False
    entry = first.get("name", "")
    for segment in segments:
        for entity in _walk(segment):
            annotations.update(entity.get("annotations", {}))
            error = error or bool(entity.get("error"))
            fault = fault or bool(entity.get("fault"))
    for child in first.get("subsegments", []):
        entry = f"{first.get('name')} {child.get('name')}"
        break
    start = min(s.get("start_time", 0) for s in segments)
    finish = max(s.get("end_time", s.get("start_time", 0)) for s in segments)
    return {"id": trace["Id"], "start": start, "duration_ms": round((finish - start) * 1000, 1),
            "entry": entry, "segments": len(segments),
            "status": "fault" if fault else "error" if error else "ok", "annotations": annotations}


class Console:
    def __init__(self, *, host: str, port: int, xray: Any, emulator: Any) -> None:
        console = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                console._get(self)

            def do_POST(self) -> None:  # noqa: N802
                console._post(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self._xray = xray
        self._emulator = emulator
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(body, default=str) if content_type == "application/json" else body).encode()
        request.send_response(status)
        request.send_header("Content-Type", f"{content_type}; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        if url.path == "/api/traces":
            minutes = int(query.get("minutes", ["60"])[0]) if query.get("minutes", ["60"])[0].isdigit() else 60
            self._send(request, 200, {"traces": recent_traces(self._xray, minutes=minutes)})
        elif url.path == "/api/schedules":
            schedules = [{**s, "next_fire": s["next_fire"].isoformat() if s.get("next_fire") else None}
                         for s in self._emulator.schedules()]
            self._send(request, 200, {"schedules": schedules})
        elif url.path == "/api/stats":
            stats = {name: dataclasses.asdict(value) for name, value in self._emulator.stats.items()}
            self._send(request, 200, {"functions": stats})
        elif url.path == "/":
            self._send(request, 200, self._page(), "text/html")
        else:
            self._send(request, 404, {"Code": "NotFoundError", "Message": f"no page {url.path}"})

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["api", "schedules"] and parts[3] == "fire":
            length = int(request.headers.get("Content-Length") or 0)
            try:
                body = json.loads(request.rfile.read(length) or b"{}")
                at = datetime.fromisoformat(body["at"].replace("Z", "+00:00")) if body.get("at") else None
            except (ValueError, TypeError, AttributeError) as exc:
                self._send(request, 400, {"Code": "BadRequestError", "Message": f"at: {exc}"})
                return
            try:
                result = self._emulator.fire_schedule(parts[2], at)
            except KeyError:
                self._send(request, 404, {"Code": "NotFoundError", "Message": f"no schedule {parts[2]}"})
                return
            except Exception as exc:  # the handler's own failure (or timeout) is the answer, not a crash
                log.exception("schedule %s failed", parts[2])
                self._send(request, 500, {"Code": type(exc).__name__, "Message": str(exc)})
                return
            self._send(request, 200, {"schedule": parts[2], "result": result})
        else:
            self._send(request, 404, {"Code": "NotFoundError", "Message": "no such action"})

    def _page(self) -> str:
        rows = []
        for t in recent_traces(self._xray):
            started = datetime.fromtimestamp(t["start"], timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            notes = ", ".join(f"{k}={v}" for k, v in sorted(t["annotations"].items()))
            rows.append(f"<tr class='{t['status']}'><td>{started}</td><td>{html.escape(t['entry'])}</td>"
                        f"<td>{t['duration_ms']}</td><td>{t['status']}</td><td>{t['segments']}</td>"
                        f"<td>{html.escape(notes)}</td><td><code>{t['id']}</code></td></tr>")
        return ("<!doctype html><meta charset=utf-8><title>Storefront traces</title>"
                "<style>body{font:14px system-ui;margin:2em}td,th{padding:2px 8px;text-align:left}"
                ".error{background:#fff3cd}.fault{background:#f8d7da}</style>"
                "<h1>Recent traces (last hour)</h1><table><tr><th>start (UTC)</th><th>entry point</th>"
                "<th>ms</th><th>status</th><th>segments</th><th>annotations</th><th>trace id</th></tr>"
                + "".join(rows) + "</table>")
