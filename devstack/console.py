"""The local stack's own HTTP endpoint (at `trace_viewer`): the trace viewer (`/`, `/trace/<id>`,
the service map at `/map` and `/map/edge`, JSON under `/api/`), schedules, fire-now, and the
mailbox (`/mail`: the e-mail sent, devstack/mailbox.py).

Traces are read only through the X-Ray API (devstack/trace_reader.py) and assembled by the pure
devstack/traces.py; this module only maps URLs to them. With `emulator=None` it is the viewer
alone, for a real account (`make traces-ui AWS_PROFILE=...`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from devstack import service_map, trace_pages
from devstack.trace_reader import TraceReader
from devstack.traces import FilterError, collector_paused, function_costs, linked, parse_filter, related, select

__all__ = ["Console"]

log = logging.getLogger("devstack.console")


def _minutes(query: dict[str, list[str]]) -> int:
    value = query.get("minutes", ["60"])[0]
    return min(int(value), 24 * 60) if value.isdigit() and int(value) > 0 else 60


class Console:
    def __init__(self, *, host: str, port: int, xray: Any, emulator: Any,
                 memory_mb: Callable[[str], int] = lambda function: 128,
                 is_api: Callable[[str], bool] = lambda function: False,
                 mailbox: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        """`memory_mb` and `is_api` price a function by name (devstack.trace_reader.Pricing);
        `mailbox` lists the e-mail sent, newest first (None: no mailbox, as against a real account)."""
        console = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                console._get(self)

            def do_POST(self) -> None:  # noqa: N802
                console._post(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self._traces = TraceReader(xray)
        self._emulator = emulator
        self._memory_mb = memory_mb
        self._is_api = is_api
        self._mailbox = mailbox
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

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

    def _costs(self, traces: list[Any]) -> list[Any]:
        return function_costs(traces, memory_mb=self._memory_mb, is_api=self._is_api)

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        try:
            with collector_paused:
                self._route(request, url, query, parts)
        except Exception as exc:  # the X-Ray API unreachable or refusing: say so, do not drop the connection
            log.exception("trace viewer request %s failed", request.path)
            self._send(request, 502, {"Code": type(exc).__name__, "Message": str(exc)})

    def _route(self, request: BaseHTTPRequestHandler, url: Any, query: dict[str, list[str]], parts: list[str]) -> None:
        if url.path in ("/", "/api/traces"):
            self._list(request, query, html=url.path == "/")
        elif len(parts) == 2 and parts[0] == "trace" or len(parts) == 3 and parts[:2] == ["api", "traces"]:
            self._trace(request, unquote(parts[-1]), query, html=parts[0] == "trace")
        elif url.path in ("/map", "/api/map"):
            self._map(request, query, html=url.path == "/map")
        elif url.path == "/map/edge":
            self._edge(request, query)
        elif url.path == "/api/costs":
            self._send(request, 200, {"functions": [c.as_dict() for c in self._costs(
                self._traces.recent(minutes=_minutes(query)))]})
        elif url.path == "/api/schedules" and self._emulator is not None:
            schedules = [{**s, "next_fire": s["next_fire"].isoformat() if s.get("next_fire") else None}
                         for s in self._emulator.schedules()]
            self._send(request, 200, {"schedules": schedules})
        elif url.path.rstrip("/") == "/mail" and self._mailbox is not None:
            self._send(request, 200, self._mailbox())
        elif url.path == "/api/stats" and self._emulator is not None:
            stats = {name: dataclasses.asdict(value) for name, value in self._emulator.stats.items()}
            self._send(request, 200, {"functions": stats})
        else:
            self._send(request, 404, {"Code": "NotFoundError", "Message": f"no page {url.path}"})

    def _clauses(self, request: BaseHTTPRequestHandler, filter_text: str, *, html: bool) -> tuple[list[Any], str] | None:
        """The filter's clauses and, on a page, what was wrong with it; None when a 400 was sent."""
        try:
            return parse_filter(filter_text), ""
        except FilterError as exc:
            if not html:
                self._send(request, 400, {"Code": "BadRequestError", "Message": f"filter: {exc}"})
                return None
            # The page still shows the traces, unfiltered, and says so.
            return [], f"filter ignored: {exc}"

    def _list(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]], *, html: bool) -> None:
        filter_text = query.get("filter", [""])[0]
        entry = query.get("entry", [""])[0]
        node = query.get("node", [""])[0]
        errors_only = query.get("errors", [""])[0] in ("1", "true", "on")
        grouped = query.get("group", [""])[0] in ("1", "true", "on")
        hide_polling = query.get("polling", [""])[0] == "hide"
        minutes = _minutes(query)
        parsed = self._clauses(request, filter_text, html=html)
        if parsed is None:
            return
        clauses, problem = parsed
        traces = self._traces.recent(minutes=minutes)
        chosen = select(traces, clauses, entry=entry, errors_only=errors_only)
        if node:
            touching = service_map.build(traces).traces_by_node.get(node, set())
            chosen = [t for t in chosen if t.id in touching]
        folded = service_map.fold_polling(chosen) if hide_polling else [(t, 1) for t in chosen]
        if not html:
            self._send(request, 200, {"traces": [{**t.as_dict(), "polls": n} for t, n in folded],
                                      "total": len(traces)})
            return
        entries = sorted({t.entry for t in traces})
        self._send(request, 200, trace_pages.list_page(
            [t for t, _ in folded], total=len(traces), costs=self._costs(chosen), entries=entries,
            filter_text=filter_text, entry=entry, errors_only=errors_only, minutes=minutes, problem=problem,
            node=node, polls={t.id: n for t, n in folded} if hide_polling else None, hide_polling=hide_polling,
            groups=service_map.entry_stats(chosen) if grouped else None), "text/html")

    def _window(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]], *,
                html: bool) -> tuple[list[Any], str, str] | None:
        """The window's traces that pass the filter, the filter, what was wrong with it."""
        filter_text = query.get("filter", [""])[0]
        parsed = self._clauses(request, filter_text, html=html)
        if parsed is None:
            return None
        clauses, problem = parsed
        return select(self._traces.recent(minutes=_minutes(query)), clauses), filter_text, problem

    def _map(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]], *, html: bool) -> None:
        window = self._window(request, query, html=html)
        if window is None:
            return
        traces, filter_text, problem = window
        drawn = service_map.build(traces)
        entries = service_map.entry_stats(traces)
        if html:
            self._send(request, 200, trace_pages.map_page(drawn, entries, traces=len(traces), minutes=_minutes(query),
                                                          filter_text=filter_text, problem=problem), "text/html")
        else:
            self._send(request, 200, {**drawn.as_dict(), "traces": len(traces),
                                      "entries": [e.as_dict() for e in entries]})

    def _edge(self, request: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        window = self._window(request, query, html=True)
        assert window is not None
        drawn = service_map.build(window[0])
        edge = drawn.edges.get(f"{query.get('from', [''])[0]}>{query.get('to', [''])[0]}")
        if edge is None:
            self._send(request, 404, trace_pages.error_page(404, "no such edge in this window"), "text/html")
            return
        self._send(request, 200, trace_pages.edge_page(drawn, edge, minutes=_minutes(query)), "text/html")

    def _trace(self, request: BaseHTTPRequestHandler, trace_id: str, query: dict[str, list[str]], *,
               html: bool) -> None:
        trace = self._traces.get(trace_id)
        if trace is None:
            message = f"no trace {trace_id} (X-Ray may still be receiving it)"
            if html:
                self._send(request, 404, trace_pages.error_page(404, message), "text/html")
            else:
                self._send(request, 404, {"Code": "NotFoundError", "Message": message})
            return
        window = self._traces.recent(minutes=_minutes(query))
        upstream, downstream = linked(trace, window)
        sharing = related(trace, window)
        shown = {t.id: t for t in [*upstream, trace, *downstream]}
        queues = {t.id: service_map.queue_spans(t, shown) for t in shown.values()}
        if html:
            gaps = {t.id: service_map.untraced_gaps(t) for t in shown.values()}
            self._send(request, 200, trace_pages.trace_page(trace, upstream=upstream, downstream=downstream,
                                                            related=sharing, queues=queues, gaps=gaps), "text/html")
            return
        self._send(request, 200, {
            **trace.as_dict(),
            "spans": [{**dataclasses.asdict(s), "duration_ms": s.duration_ms, "status": s.status}
                      for s in trace.spans],
            "queues": [{**dataclasses.asdict(s), "duration_ms": s.duration_ms} for s in queues[trace.id]],
            "upstream": [t.id for t in upstream], "downstream": [t.id for t in downstream],
            "related": {label: [t.id for t in others] for label, others in sharing.items()}})

    def _invoke(self, request: BaseHTTPRequestHandler, name: str) -> None:
        """`POST /api/functions/<handler>/invoke` with the event as the body: a synchronous Invoke
        (`aws lambda invoke` on AWS), for functions run by hand such as rebuild_sales."""
        length = int(request.headers.get("Content-Length") or 0)
        try:
            event = json.loads(request.rfile.read(length) or b"{}")
            function = self._emulator.function(name)
        except ValueError as exc:
            self._send(request, 400, {"Code": "BadRequestError", "Message": f"the event is not JSON: {exc}"})
            return
        except KeyError:
            self._send(request, 404, {"Code": "NotFoundError", "Message": f"no function {name}"})
            return
        outcome = self._emulator.invoke(function, event, records=0)
        if outcome.ok:
            self._send(request, 200, {"function": name, "result": outcome.result})
        else:
            self._send(request, 500, outcome.error_response(function))

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path).path.strip("/").split("/")
        if self._emulator is not None and len(parts) == 4 and parts[:2] == ["api", "schedules"] and parts[3] == "fire":
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
        elif self._emulator is not None and len(parts) == 4 and parts[:2] == ["api", "functions"] and parts[3] == "invoke":
            self._invoke(request, parts[2])
        else:
            self._send(request, 404, {"Code": "NotFoundError", "Message": "no such action"})
