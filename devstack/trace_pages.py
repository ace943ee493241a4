"""The trace viewer's HTML: a list with filters and cost per function, and one trace's waterfall.

Server-rendered; the only script submits the filter form when a select changes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Iterable, Mapping
from urllib.parse import quote, urlencode

from devstack.traces import LAMBDA_GB_SECOND_PRICE, SEARCH_KEYS, FunctionCost, Span, Trace

__all__ = ["list_page", "trace_page", "error_page"]

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
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _filter_link(key: str, value: object, text: str | None = None) -> str:
    expression = f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}"
    return f"<a href='/?{urlencode({'filter': expression})}'>{escape(text or f'{key}={value}')}</a>"


def _notes(trace: Trace) -> str:
    return " ".join(_filter_link(k, v) for k in SEARCH_KEYS for v in trace.annotations.get(k, ()))


def _trace_row(trace: Trace) -> str:
    return (f"<tr class='trace status-{trace.status}' data-trace-id='{trace.id}'>"
            f"<td>{_time(trace.start)}</td><td><a class='trace-link' href='/trace/{quote(trace.id)}'>"
            f"{escape(trace.entry)}</a></td><td class=num>{trace.duration_ms}</td>"
            f"<td class=status>{trace.status}</td><td class=notes>{_notes(trace)}</td>"
            f"<td><code>{trace.id}</code></td></tr>")


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


def list_page(traces: list[Trace], *, total: int, costs: list[FunctionCost], entries: list[str], filter_text: str,
              entry: str, errors_only: bool, minutes: int, problem: str = "") -> str:
    """The recent traces (already filtered), the filter form, and cost per function."""
    options = "".join(f"<option{' selected' if e == entry else ''}>{escape(e)}</option>" for e in entries)
    form = (
        "<form id=filters method=get action='/'>"
        f"<input id=filter name=filter placeholder='order_id = \"...\"' value='{escape(filter_text, True)}'> "
        f"<select id=entry name=entry onchange='this.form.submit()'><option value=''>any entry point</option>"
        f"{options}</select> <label><input type=checkbox id=errors name=errors value=1"
        f"{' checked' if errors_only else ''} onchange='this.form.submit()'> errors only</label> "
        f"last <input name=minutes size=4 value='{minutes}'> min <button id=apply>Apply</button></form>")
    warning = f"<p class=cause id=problem>{escape(problem)}</p>" if problem else ""
    rows = "".join(_trace_row(t) for t in traces)
    body = (f"<h1>Traces</h1>{form}{warning}<p id=count>{len(traces)} of {total} traces of the last "
            f"{minutes} min</p><table id=traces><tr><th>start (UTC)</th><th>entry point</th><th>ms</th>"
            f"<th>status</th><th>annotations</th><th>trace id</th></tr>{rows}</table>"
            f"<h2>Cost per function</h2>{_cost_table(costs)}")
    return _page("Storefront traces", body)


def _span_row(span: Span, origin: float, total: float) -> str:
    left = (span.start - origin) / total * 100 if total else 0
    width = max((span.end - span.start) / total * 100 if total else 0, 0.2)
    notes = ", ".join(f"{k}={v}" for k, v in sorted(span.annotations.items()))
    cause = f"<div class=cause>{escape(span.cause)}</div>" if span.cause else ""
    return (f"<tr class='span kind-{span.kind} status-{span.status}' data-segment='{escape(span.segment)}' "
            f"data-name='{escape(span.name)}'><td class=name style='padding-left:{6 + span.depth * 16}px'>"
            f"{escape(span.name)}{cause}</td><td class=num>+{(span.start - origin) * 1000:.1f}</td>"
            f"<td class=num>{span.duration_ms}</td><td class=status>{span.status}</td>"
            f"<td class=bar-cell><div class=bar style='left:{left:.2f}%;width:{width:.2f}%'></div></td>"
            f"<td class=notes>{escape(notes)}</td></tr>")


def trace_page(trace: Trace, *, upstream: list[Trace], downstream: list[Trace],
               related: Mapping[str, list[Trace]]) -> str:
    """One trace (with the traces linked to it) as a waterfall, and its related traces."""
    shown = [*upstream, trace, *downstream]
    origin = min(t.start for t in shown)
    total = max(t.end for t in shown) - origin
    rows = []
    for member in shown:
        role = "this trace" if member is trace else "linked upstream" if member in upstream else "linked downstream"
        rows.append(f"<tr class='trace-head' data-trace-id='{member.id}'><td colspan=6>{role}: "
                    f"<a href='/trace/{quote(member.id)}'><code>{member.id}</code></a> {escape(member.entry)} "
                    f"({member.duration_ms} ms, {member.status})</td></tr>")
        rows += [_span_row(s, origin, total) for s in member.spans]
    related_html = "".join(
        f"<li>{_filter_link(*_split(label), text=label)}: "
        + " ".join(f"<a class=related href='/trace/{quote(t.id)}'>{escape(t.entry)}</a>" for t in others[:20])
        + (f" and {len(others) - 20} more" if len(others) > 20 else "") + "</li>"
        for label, others in related.items()) or "<li>none in this window</li>"
    body = (f"<p><a href='/'>&larr; all traces</a></p><h1>{escape(trace.entry)}</h1>"
            f"<p id=summary><code>{trace.id}</code> started {_time(trace.start)} UTC, {trace.duration_ms} ms, "
            f"<span class=status-{trace.status}>{trace.status}</span>; {len(upstream)} linked upstream, "
            f"{len(downstream)} linked downstream</p>"
            "<table class=waterfall id=waterfall><tr><th>segment / subsegment</th><th>start ms</th><th>ms</th>"
            f"<th>status</th><th></th><th>annotations</th></tr>{''.join(rows)}</table>"
            f"<h2>Related traces (sharing an annotation)</h2><ul id=related>{related_html}</ul>")
    return _page(f"Trace {trace.id}", body)


def _split(label: str) -> tuple[str, object]:
    key, _, literal = label.partition(" = ")
    return key, json.loads(literal)


def error_page(status: int, message: str) -> str:
    return _page(f"{status}", f"<p><a href='/'>&larr; all traces</a></p><h1>{status}</h1><p>{escape(message)}</p>")
