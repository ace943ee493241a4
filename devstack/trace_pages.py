"""The trace viewer's HTML: a list with filters and cost per function, one trace's waterfall (with
queue time, cold starts and resource names), and the service map (an SVG drawn here, no script
library) with its edges, latency per entry point and an edge's slowest calls.

Server-rendered; the only script submits the filter form when a select or box changes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Iterable, Mapping
from urllib.parse import quote, urlencode

from devstack.service_map import HISTOGRAM_BOUNDS_MS, Edge, EntryStats, ServiceMap, layout, short_names, with_gaps
from devstack.traces import LAMBDA_GB_SECOND_PRICE, SEARCH_KEYS, FunctionCost, Span, Trace

__all__ = ["list_page", "trace_page", "error_page", "map_page", "edge_page"]

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:3px 8px;text-align:left;vertical-align:top}
th{border-bottom:1px solid #999}tr.trace:hover{background:#eef}
.status-error td.status,.span.status-error .name{color:#8a6d00;font-weight:600}
.status-fault td.status,.span.status-fault .name{color:#b00020;font-weight:600}
tr.status-error{background:#fff8e1}tr.status-fault{background:#fdecee}
.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}
form{margin:1em 0}input[name=filter]{width:28em}
.waterfall td{padding:1px 6px}.waterfall td.name{white-space:nowrap}.bar-cell{width:50%;min-width:300px;position:relative}
.bar{position:absolute;top:3px;height:12px;background:#4a7bd0;min-width:2px;border-radius:2px}
.span.kind-aws .bar{background:#e39b2d}.span.kind-segment .bar{background:#2d8a4e}
.span.status-error .bar{background:#d4a300}.span.status-fault .bar{background:#c62828}
tr.trace-head td{background:#eee;font-weight:600;padding-top:8px}
.notes{color:#555;font-size:12px}.cause{color:#b00020;font-size:12px}
h2{margin-top:1.6em}
.span.kind-init .bar{background:#8e44ad}.span.kind-queue .bar{background:repeating-linear-gradient(45deg,#999,#999 3px,#ddd 3px,#ddd 6px)}
.span.kind-gap .bar{background:none;border:1px dashed #999;height:10px}.span.kind-gap td.name{color:#666}
.span.kind-queue td.name,.span.kind-init td.name,.span.kind-gap td.name{font-style:italic}.resource{color:#555;font-size:12px;margin-left:.5em}
nav a{margin-right:1em}.hist{display:inline-flex;align-items:flex-end;height:40px;gap:1px;vertical-align:bottom}
.hist span{display:inline-block;width:14px;background:#4a7bd0;min-height:1px}.hist span.empty{background:#ddd}
#map{border:1px solid #ccc;background:#fcfcfc;max-width:100%}#map .node rect{stroke:#555;stroke-width:1;rx:6}
#map .node text{font-size:11px}#map .node .kind{fill:#555;font-size:9px;text-transform:uppercase}
#map .node.failing rect{stroke:#c62828;stroke-width:2.5}#map path.edge{fill:none;stroke:#778;stroke-width:1.4}
#map path.edge.async{stroke-dasharray:5 4;stroke:#7a55b5}#map path.edge.failing{stroke:#c62828}
#map text.label{font-size:11px;paint-order:stroke;stroke:#fcfcfc;stroke-width:3px;fill:#333}
#map a:hover rect,#map a:hover path.edge{stroke-width:3}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


class _Queries(dict[str, str]):
    """A page's filter queries (`filter=...`) by expression, each encoded once.

    The list links every searchable annotation of every trace (12,644 links for the benchmark's
    5,464 traces, 1,719 of them distinct: an order's id recurs on its polls and its consumer, an
    owner on every trace), and urlencode was half of the list's rendering. One per page, so
    nothing is kept between loads.
    """

    def __missing__(self, expression: str) -> str:
        query = self[expression] = urlencode({"filter": expression})
        return query


def _filter_link(key: str, value: object, text: str | None = None, queries: _Queries | None = None) -> str:
    expression = f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}"
    query = queries[expression] if queries is not None else urlencode({"filter": expression})
    return f"<a href='/?{query}'>{escape(text or f'{key}={value}')}</a>"


def _notes(trace: Trace, queries: _Queries) -> str:
    return " ".join(_filter_link(k, v, queries=queries) for k in SEARCH_KEYS
                    for v in trace.annotations.get(k, ()))


def _trace_row(trace: Trace, polls: int, queries: _Queries) -> str:
    folded = f" <span class=notes>({polls} polls, newest shown)</span>" if polls > 1 else ""
    return (f"<tr class='trace status-{trace.status}' data-trace-id='{trace.id}' data-polls='{polls}'>"
            f"<td>{_time(trace.start)}</td><td><a class='trace-link' href='/trace/{quote(trace.id)}'>"
            f"{escape(trace.entry)}</a>{folded}</td><td class=num>{trace.duration_ms}</td>"
            f"<td class=status>{trace.status}</td><td class=notes>{_notes(trace, queries)}</td>"
            f"<td><code>{trace.id}</code></td></tr>")


def _nav(minutes: int) -> str:
    return f"<nav><a href='/?minutes={minutes}'>Traces</a><a id=map-link href='/map?minutes={minutes}'>Service map</a></nav>"


def _histogram(stats: EntryStats) -> str:
    top = max(n for _, n in stats.histogram) or 1
    bars = "".join(
        f"<span class='{'' if n else 'empty'}' style='height:{max(n / top * 40, 1):.0f}px' "
        f"title='{n} up to {_bound(b)}'></span>" for b, n in stats.histogram)
    return f"<span class=hist data-counts='{','.join(str(n) for _, n in stats.histogram)}'>{bars}</span>"


def _bound(bound: float) -> str:
    return "more" if bound == float("inf") else f"{bound:g} ms"


def entry_table(entries: Iterable[EntryStats], *, minutes: int) -> str:
    """Per entry point: count, failures, p50/p90/p99, the histogram, the slowest traces."""
    rows = "".join(
        f"<tr class=entry data-entry='{escape(e.entry, True)}'><td><a href='/?{urlencode({'entry': e.entry, 'minutes': minutes})}'>"
        f"{escape(e.entry)}</a></td><td class=num>{e.count}</td><td class=num>{e.failed}</td>"
        f"<td class=num>{e.p50_ms:.1f}</td><td class=num>{e.p90_ms:.1f}</td><td class=num>{e.p99_ms:.1f}</td>"
        f"<td>{_histogram(e)}</td><td class=slowest>"
        + " ".join(f"<a class=slow href='/trace/{quote(t.id)}'>{t.duration_ms:.0f}&nbsp;ms</a>" for t in e.slowest)
        + "</td></tr>" for e in entries)
    buckets = ", ".join(_bound(b) for b in HISTOGRAM_BOUNDS_MS)
    return ("<table id=entries><tr><th>entry point</th><th>traces</th><th>failed</th><th>p50 ms</th><th>p90 ms</th>"
            f"<th>p99 ms</th><th>latency histogram</th><th>slowest (one click)</th></tr>{rows}</table>"
            f"<p class=notes>Histogram buckets, left to right: up to {buckets}.</p>")


def list_page(traces: list[Trace], *, total: int, costs: list[FunctionCost], entries: list[str], filter_text: str,
              entry: str, errors_only: bool, minutes: int, problem: str = "", node: str = "",
              polls: Mapping[str, int] | None = None, hide_polling: bool = False,
              groups: list[EntryStats] | None = None) -> str:
    """The recent traces (already filtered), the filter form, and cost per function.

    `polls` folds polling (trace id -> how many polls it stands for; the others are not in
    `traces`); `groups` shows one row per entry point instead of one per trace.
    """
    options = "".join(f"<option{' selected' if e == entry else ''}>{escape(e)}</option>" for e in entries)
    node_field = f"<input type=hidden name=node value='{escape(node, True)}'>" if node else ""
    form = (
        "<form id=filters method=get action='/'>"
        f"<input id=filter name=filter placeholder='order_id = \"...\"' value='{escape(filter_text, True)}'> "
        f"<select id=entry name=entry onchange='this.form.submit()'><option value=''>any entry point</option>"
        f"{options}</select> <label><input type=checkbox id=errors name=errors value=1"
        f"{' checked' if errors_only else ''} onchange='this.form.submit()'> errors only</label> "
        f"<label><input type=checkbox id=group name=group value=1{' checked' if groups is not None else ''} "
        "onchange='this.form.submit()'> group by entry point</label> "
        f"<label><input type=checkbox id=hide-polling name=polling value=hide{' checked' if hide_polling else ''} "
        "onchange='this.form.submit()'> hide polling</label> "
        f"&nbsp; window: last <input name=minutes size=4 value='{minutes}'> min {node_field}<button id=apply>Apply</button></form>")
    warning = f"<p class=cause id=problem>{escape(problem)}</p>" if problem else ""
    scope = (f" touching <b id=node>{escape(node)}</b> (<a href='/?minutes={minutes}'>all</a>)" if node else "")
    if groups is not None:
        listing = entry_table(groups, minutes=minutes)
    else:
        queries = _Queries()
        rows = "".join(_trace_row(t, (polls or {}).get(t.id, 1), queries) for t in traces)
        listing = ("<table id=traces><tr><th>start (UTC)</th><th>entry point</th><th>ms</th>"
                   f"<th>status</th><th>annotations</th><th>trace id</th></tr>{rows}</table>")
    shown = sum((polls or {}).get(t.id, 1) for t in traces)
    body = (f"{_nav(minutes)}<h1>Traces</h1>{form}{warning}<p id=count>{shown} of {total} traces of the last "
            f"{minutes} min{scope}</p>{listing}<h2>Cost per function</h2>{_cost_table(costs)}")
    return _page("Storefront traces", body)


def _cost_table(costs: Iterable[FunctionCost]) -> str:
    rows = "".join(
        f"<tr class=cost data-function='{escape(c.function)}'><td>{escape(c.function)}</td>"
        f"<td class=num>{c.memory_mb}</td><td class=num>{c.invocations}</td>"
        f"<td class=num>{c.cold_starts}</td><td class=num>{c.errors}</td><td class=num>{c.p50_ms:.1f}</td>"
        f"<td class=num>{c.p99_ms:.1f}</td><td class=num>${c.cost_per_million:,.2f}</td></tr>" for c in costs)
    return ("<table id=costs><tr><th>function</th><th>memory MB</th><th>invocations</th><th>cold starts</th>"
            "<th>errors</th><th>p50 ms</th><th>p99 ms</th><th>est. cost per million</th></tr>"
            f"{rows}</table><p class=notes>Lambda $0.20 per million requests + ${LAMBDA_GB_SECOND_PRICE:.10f} per "
            "GB-second on arm64 at the configured memory (duration rounded up to 1 ms); the API adds API Gateway REST at "
            "$3.50 per million. Durations measured here are the local stack's, not Lambda's.</p>")


def _span_label(span: Span) -> str:
    if span.kind == "init":
        return "Initialization (cold start)"
    return span.name


def _span_row(span: Span, origin: float, total: float) -> str:
    left = (span.start - origin) / total * 100 if total else 0
    width = max((span.end - span.start) / total * 100 if total else 0, 0.2)
    notes = ", ".join(f"{k}={v}" for k, v in sorted(span.annotations.items()))
    cause = f"<div class=cause>{escape(span.cause)}</div>" if span.cause else ""
    resource = f"<span class=resource>{escape(span.resource)}</span>" if span.resource and span.kind == "aws" else ""
    return (f"<tr class='span kind-{span.kind} status-{span.status}' data-segment='{escape(span.segment)}' "
            f"data-name='{escape(span.name)}' data-resource='{escape(span.resource)}' data-ms='{span.duration_ms}'>"
            f"<td class=name style='padding-left:{6 + span.depth * 16}px'>"
            f"{escape(_span_label(span))}{resource}{cause}</td><td class=num>+{(span.start - origin) * 1000:.1f}</td>"
            f"<td class=num>{span.duration_ms}</td><td class=status>{span.status}</td>"
            f"<td class=bar-cell><div class=bar style='left:{left:.2f}%;width:{width:.2f}%'></div></td>"
            f"<td class=notes>{escape(notes)}</td></tr>")


def _trace_label(trace: Trace) -> str:
    """An entry point told apart from others of the same name: its time and duration."""
    return f"{trace.entry} at {_time(trace.start)} ({trace.duration_ms:.0f} ms)"


def trace_page(trace: Trace, *, upstream: list[Trace], downstream: list[Trace],
               related: Mapping[str, list[Trace]], queues: Mapping[str, list[Span]] | None = None,
               gaps: Mapping[str, Mapping[str, Span]] | None = None) -> str:
    """One trace (with the traces linked to it) as a waterfall, and its related traces.

    `queues` holds, per trace id, the time its messages waited (service_map.queue_spans): shown
    just before that trace's own spans; `gaps` its untraced blanks (service_map.untraced_gaps).
    """
    shown = [*upstream, trace, *downstream]
    origin = min(t.start for t in shown)
    total = max(t.end for t in shown) - origin
    rows = []
    for member in shown:
        role = "this trace" if member is trace else "linked upstream" if member in upstream else "linked downstream"
        rows.append(f"<tr class='trace-head' data-trace-id='{member.id}'><td colspan=6>{role}: "
                    f"<a href='/trace/{quote(member.id)}'><code>{member.id}</code></a> {escape(member.entry)} "
                    f"({member.duration_ms} ms, {member.status})</td></tr>")
        rows += [_span_row(s, origin, total) for s in (queues or {}).get(member.id, [])]
        rows += [_span_row(s, origin, total) for s in with_gaps(member.spans, (gaps or {}).get(member.id, {}))]
    related_html = "".join(
        f"<li>{_filter_link(*_split(label), text=label)}: "
        + ", ".join(f"<a class=related href='/trace/{quote(t.id)}'>{escape(_trace_label(t))}</a>" for t in others[:20])
        + (f" and {len(others) - 20} more" if len(others) > 20 else "") + "</li>"
        for label, others in related.items()) or "<li>none in this window</li>"
    body = (f"{_nav(60)}<p><a href='/'>&larr; all traces</a></p><h1>{escape(trace.entry)}</h1>"
            f"<p id=summary><code>{trace.id}</code> started {_time(trace.start)} UTC, {trace.duration_ms} ms, "
            f"<span class=status-{trace.status}>{trace.status}</span>; {len(upstream)} linked upstream, "
            f"{len(downstream)} linked downstream</p>"
            "<table class=waterfall id=waterfall><tr><th>segment / subsegment</th><th>start ms</th><th>ms</th>"
            f"<th>status</th><th></th><th>annotations</th></tr>{''.join(rows)}</table>"
            "<p class=notes>Striped: the time a message waited in its queue (the send's end to the consumer's "
            "start). Purple: a cold start's Initialization. Dashed: a blank of 20 ms or more before a call, where "
            "the code ran on its own (on a cold start, its first use). Grey text beside an AWS call: the resource it "
            "acted on, where the X-Ray SDK records one.</p>"
            f"<h2>Related traces (sharing an annotation)</h2><ul id=related>{related_html}</ul>")
    return _page(f"Trace {trace.id}", body)


# -- the service map ------------------------------------------------------------------------------

_COLORS = {"clients": "#e8e8e8", "api": "#cdebd6", "function": "#d6e4f8", "table": "#fbe3c4", "queue": "#e6dcf5",
           "topic": "#f8d7e8", "bucket": "#eadccd", "state machine": "#cfeeea", "event bus": "#f5f0c8",
           "stream": "#f5f0c8", "remote": "#eeeeee"}
_COL_W, _ROW_H, _BOX_W, _BOX_H, _PAD = 300, 70, 170, 40, 16
_UNNAMED = " (name not recorded)"  # service_map's name for a call that names no resource


def _ms(value: float) -> str:
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def _edge_label(edge: Edge) -> str:
    """"count · p50/p99", and the failed share when any: short enough to sit between two columns."""
    failed = edge.error_rate + edge.fault_rate
    return (f"{edge.count} · {_ms(edge.percentile(50))}/{_ms(edge.percentile(99))}"
            + (f" · {failed:.0%} err" if failed else ""))


def _map_svg(service_map: ServiceMap, *, minutes: int, query: str) -> str:
    placed = layout(service_map)
    if not placed:
        return "<p id=map-empty>No traces in this window.</p>"
    short = short_names(n.name for n in service_map.nodes.values())
    width = (max(c for c, _ in placed.values()) + 1) * _COL_W + _PAD
    height = (max(r for _, r in placed.values()) + 1) * _ROW_H + _PAD * 2

    def box(node_id: str) -> tuple[float, float]:
        col, row = placed[node_id]
        return _PAD + col * _COL_W, _PAD + row * _ROW_H

    parts = []
    for edge in service_map.edges.values():
        (sx, sy), (tx, ty) = box(edge.source), box(edge.target)
        x1, y1, x2, y2 = sx + _BOX_W, sy + _BOX_H / 2, tx, ty + _BOX_H / 2
        if x2 <= x1:  # backwards or in the same column: loop under the boxes
            x1, y1, x2, y2 = sx + _BOX_W / 2, sy + _BOX_H, tx + _BOX_W / 2, ty + _BOX_H
            path = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + 40:.0f} {x2:.0f},{y2 + 40:.0f} {x2:.0f},{y2:.0f}"
            lx, ly = (x1 + x2) / 2, max(y1, y2) + 30
        else:
            mid = (x1 + x2) / 2
            path = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
            # The curve's midpoint: edges fanning out of one box (or into one) are half a row apart there.
            lx, ly = mid, (y1 + y2) / 2 - 3
        classes = "edge" + (" async" if edge.asynchronous else "") + (
            " failing" if edge.error_rate + edge.fault_rate else "")
        href = f"/map/edge?{urlencode({'from': edge.source, 'to': edge.target, 'minutes': minutes})}{query}"
        parts.append(
            f"<a class=edge-link href='{escape(href, True)}' data-source='{escape(edge.source, True)}' "
            f"data-target='{escape(edge.target, True)}' data-kind='{edge.kind}' data-count='{edge.count}' "
            f"data-p50='{edge.percentile(50):.1f}' data-p99='{edge.percentile(99):.1f}' "
            f"data-error-rate='{edge.error_rate:.4f}' data-fault-rate='{edge.fault_rate:.4f}'>"
            f"<title>{escape(service_map.nodes[edge.source].name)} → {escape(service_map.nodes[edge.target].name)}"
            f" ({edge.kind}): {escape(_edge_label(edge))}</title>"
            f"<path class='{classes}' d='{path}' marker-end='url(#arrow)'/>"
            f"<text class=label x='{lx:.0f}' y='{ly:.0f}' text-anchor=middle>{escape(_edge_label(edge))}</text></a>")
    for node_id, node in service_map.nodes.items():
        x, y = box(node_id)
        calls, _, p99, failed = service_map.node_stats(node_id)
        href = f"/?{urlencode({'node': node_id, 'minutes': minutes})}"
        label, kind = short[node.name], node.kind
        if label.endswith(_UNNAMED):  # the kind line says it, the box keeps the service's name
            label, kind = label[:-len(_UNNAMED)], f"{kind} · no name"
        label = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f"<a class=node-link href='{escape(href, True)}'><g class='node{' failing' if failed else ''}' "
            f"data-node='{escape(node_id, True)}' data-kind='{escape(node.kind, True)}' data-name='{escape(node.name, True)}' "
            f"data-traces='{len(service_map.traces_by_node.get(node_id, ()))}'>"
            f"<title>{escape(node.kind)} {escape(node.name)}: {calls} calls in, p99 {_ms(p99)}, {failed:.0%} failed; "
            f"click for its traces</title>"
            f"<rect x='{x}' y='{y}' width='{_BOX_W}' height='{_BOX_H}' fill='{_COLORS.get(node.kind, '#eeeeee')}'/>"
            f"<text class=kind x='{x + 6}' y='{y + 12}'>{escape(kind)}</text>"
            f"<text x='{x + 6}' y='{y + 28}'>{escape(label)}</text></g></a>")
    return (f"<svg id=map xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}'><defs><marker id=arrow viewBox='0 0 10 10' refX=10 refY=5 "
            "markerWidth=7 markerHeight=7 orient=auto-start-reverse><path d='M0,0 L10,5 L0,10 z' fill='#778'/>"
            f"</marker></defs>{''.join(parts)}</svg>")


def _edge_rows(service_map: ServiceMap, minutes: int, query: str) -> str:
    rows = []
    for edge in sorted(service_map.edges.values(), key=lambda e: (-e.count, e.id)):
        href = f"/map/edge?{urlencode({'from': edge.source, 'to': edge.target, 'minutes': minutes})}{query}"
        rows.append(
            f"<tr class=edge-row data-source='{escape(edge.source, True)}' data-target='{escape(edge.target, True)}'>"
            f"<td>{escape(service_map.nodes[edge.source].name)}</td><td>{escape(service_map.nodes[edge.target].name)}</td>"
            f"<td>{edge.kind}</td><td class=num><a href='{escape(href, True)}'>{edge.count}</a></td>"
            f"<td class=num>{edge.percentile(50):.1f}</td><td class=num>{edge.percentile(99):.1f}</td>"
            f"<td class=num>{edge.error_rate:.1%}</td><td class=num>{edge.fault_rate:.1%}</td></tr>")
    return ("<table id=edges><tr><th>from</th><th>to</th><th>kind</th><th>count</th><th>p50 ms</th><th>p99 ms</th>"
            f"<th>error rate</th><th>fault rate</th></tr>{''.join(rows)}</table>")


def map_page(service_map: ServiceMap, entries: list[EntryStats], *, traces: int, minutes: int,
             filter_text: str = "", problem: str = "") -> str:
    """The service map of a window's traces, its edges as a table, and latency per entry point."""
    query = f"&{urlencode({'filter': filter_text})}" if filter_text else ""
    form = ("<form id=map-filters method=get action='/map'>"
            f"<input id=filter name=filter placeholder='order_id = \"...\" (all traces)' "
            f"value='{escape(filter_text, True)}'> last <input name=minutes size=4 value='{minutes}'> min "
            "<button id=apply>Apply</button></form>")
    warning = f"<p class=cause id=problem>{escape(problem)}</p>" if problem else ""
    unresolved = (f"; {service_map.unresolved_links} links to producer traces outside the window"
                  if service_map.unresolved_links else "")
    body = (f"{_nav(minutes)}<h1>Service map</h1>{form}{warning}<p id=map-summary>{traces} traces of the last "
            f"{minutes} min, {len(service_map.nodes)} nodes, {len(service_map.edges)} edges{unresolved}. "
            "Click a node for its traces, an edge for its slowest calls. Edge labels: calls · p50/p99 · "
            "errors; dashed: asynchronous (the time a message waited, or a state machine's task).</p>"
            f"{_map_svg(service_map, minutes=minutes, query=query)}"
            f"<h2>Edges</h2>{_edge_rows(service_map, minutes, query)}"
            f"<h2>Entry points</h2>{entry_table(entries, minutes=minutes)}")
    return _page("Storefront service map", body)


def edge_page(service_map: ServiceMap, edge: Edge, *, minutes: int) -> str:
    """One edge's figures and its slowest calls, each a link to its trace."""
    source, target = service_map.nodes[edge.source], service_map.nodes[edge.target]
    rows = "".join(
        f"<tr class='call status-{c.status}' data-trace-id='{c.trace_id}'><td>{_time(c.start)}</td>"
        f"<td class=num>{c.duration_ms:.1f}</td><td class=status>{c.status}</td><td>{escape(c.label)}</td>"
        f"<td><a class=trace-link href='/trace/{quote(c.trace_id)}'><code>{c.trace_id}</code></a></td></tr>"
        for c in edge.slowest())
    what = {"message": "the time each message waited before its consumer started",
            "task": "each task's run", "request": "each request", "call": "each call"}[edge.kind]
    body = (f"{_nav(minutes)}<p><a href='/map?minutes={minutes}'>&larr; service map</a></p>"
            f"<h1>{escape(source.name)} &rarr; {escape(target.name)}</h1>"
            f"<p id=edge-summary>{edge.kind}: {edge.count} in the last {minutes} min, p50 "
            f"{edge.percentile(50):.1f} ms, p99 {edge.percentile(99):.1f} ms, errors {edge.error_rate:.1%}, faults "
            f"{edge.fault_rate:.1%} (measured: {what})</p><h2>Slowest</h2><table id=slowest><tr><th>start (UTC)</th>"
            f"<th>ms</th><th>status</th><th>what</th><th>trace</th></tr>{rows}</table>")
    return _page(f"{source.name} -> {target.name}", body)


def _split(label: str) -> tuple[str, object]:
    key, _, literal = label.partition(" = ")
    return key, json.loads(literal)


def error_page(status: int, message: str) -> str:
    return _page(f"{status}", f"<p><a href='/'>&larr; all traces</a></p><h1>{status}</h1><p>{escape(message)}</p>")
