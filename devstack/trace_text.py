"""`make traces`: recent traces, one trace as an indented timeline, cost per function, in lines of
at most `width` columns (the terminal's; 100 when unknown): long parts wrap or are cut with "…"."""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime, timezone
from typing import Iterable, Mapping

from devstack.service_map import EntryStats, ServiceMap, layout, short_names, with_gaps
from devstack.traces import SEARCH_KEYS, FunctionCost, Span, Trace

__all__ = ["DEFAULT_WIDTH", "cost_table", "entry_table", "map_table", "slowest_table", "terminal_width", "timeline",
           "trace_table", "wrap"]

DEFAULT_WIDTH = 100


def terminal_width() -> int:
    """The terminal's width (COLUMNS, then the terminal), or DEFAULT_WIDTH when output is not one."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def wrap(text: str, width: int, indent: int = 0) -> str:
    """`text` wrapped to `width`, continuation lines indented by `indent`."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=" " * indent, break_on_hyphens=False)) or text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _columns(rows: list[list[str]], right: set[int], width: int) -> str:
    """Aligned columns; when too wide, the first column is cut to fit."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    if excess > 0:
        widths[0] = max(widths[0] - excess, 8)
    lines = []
    for row in rows:
        cells = [_cut(c, w).rjust(w) if i in right else _cut(c, w).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def trace_table(traces: Iterable[Trace], width: int = DEFAULT_WIDTH) -> str:
    """Two lines per trace: start, duration, status and entry point; then its id and key annotations."""
    lines = [_cut(f"{'START (UTC)':<12}  {'DURATION':>12}  {'STATUS':<8}  ENTRY POINT", width),
             "  TRACE ID  ANNOTATIONS"]
    for t in traces:
        lines.append(_cut(f"{_time(t.start)}  {t.duration_ms:9.1f} ms  {t.status:<8}  {t.entry}", width))
        notes = " ".join(f"{k}={t.annotation(k)}" for k in SEARCH_KEYS if k in t.annotations)
        lines.append(wrap(f"  {t.id}  {notes}".rstrip(), width, indent=len(t.id) + 4))
    return "\n".join(lines) if len(lines) > 2 else "no traces"


def _span_name(span: Span) -> str:
    if span.kind == "init":
        return "Initialization (cold start)"
    if span.kind in ("queue", "gap"):
        return f"~ {span.name}"
    return f"{span.name} {span.resource}" if span.resource and span.kind == "aws" else span.name


def timeline(trace: Trace, *, upstream: Iterable[Trace] = (), downstream: Iterable[Trace] = (),
             width: int = DEFAULT_WIDTH, queues: Mapping[str, list[Span]] | None = None,
             gaps: Mapping[str, Mapping[str, Span]] | None = None) -> str:
    """The trace (and those linked to it) as an indented timeline: offset, duration, status, name.

    `queues` (trace id -> service_map.queue_spans) adds the time each message waited ("~ waited
    in <queue>") before its consumer's spans, `gaps` (trace id -> service_map.untraced_gaps) the
    blanks ("~ untraced: ..."). An AWS call names its resource after the operation.
    """
    shown = [*upstream, trace, *downstream]
    origin = min(t.start for t in shown)
    lines = []
    for member in shown:
        role = "" if member is trace else " (linked)"
        lines.append(wrap(f"trace {member.id}{role}  {member.entry}  {member.duration_ms:.1f} ms  {member.status}",
                          width, indent=2))
        for span in [*(queues or {}).get(member.id, []), *with_gaps(member.spans, (gaps or {}).get(member.id, {}))]:
            notes = "" if span.kind == "queue" else " ".join(f"{k}={v}" for k, v in sorted(span.annotations.items()))
            flag = "" if span.status == "ok" else f" [{span.status.upper()}]"
            cause = f"  ! {span.cause}" if span.cause else ""
            prefix = f"  +{(span.start - origin) * 1000:9.1f} ms {span.duration_ms:9.1f} ms  {'  ' * span.depth}"
            line = f"{prefix}{_span_name(span)}{flag}{'  ' + notes if notes else ''}{cause}"
            lines.append(wrap(line, width, indent=min(len(prefix) + 2, width // 2)))
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.1f}"


def map_table(service_map: ServiceMap, width: int = DEFAULT_WIDTH) -> str:
    """The service map as its edges in the order of the flow (the map's columns), busiest first
    within a column: FROM -> TO, kind, calls, p50, p99, error and fault rates."""
    rows = [["FROM -> TO", "KIND", "CALLS", "P50 MS", "P99 MS", "ERR%", "FAULT%"]]
    short = short_names(n.name for n in service_map.nodes.values())
    placed = layout(service_map)
    for edge in sorted(service_map.edges.values(),
                       key=lambda e: (placed[e.source][0], placed[e.target][0], -e.count, e.id)):
        source, target = service_map.nodes[edge.source], service_map.nodes[edge.target]
        rows.append([f"{short[source.name]} -> {short[target.name]}", edge.kind, str(edge.count), _ms(edge.percentile(50)),
                     _ms(edge.percentile(99)), f"{edge.error_rate * 100:.1f}", f"{edge.fault_rate * 100:.1f}"])
    if len(rows) == 1:
        return "no calls in these traces"
    prefix = next((n[:-len(short[n])] for n in short if short[n] != n), "")
    note = f"\n(names without the prefix {prefix!r})" if prefix else ""
    return _columns(rows, right=set(range(2, 7)), width=width) + note


def entry_table(entries: Iterable[EntryStats], width: int = DEFAULT_WIDTH) -> str:
    """Per entry point: traces, failed, p50/p90/p99 and the slowest trace's id."""
    rows = [["ENTRY POINT", "TRACES", "FAILED", "P50 MS", "P90 MS", "P99 MS"]]
    for e in entries:
        rows.append([e.entry, str(e.count), str(e.failed), _ms(e.p50_ms), _ms(e.p90_ms), _ms(e.p99_ms)])
    if len(rows) == 1:
        return "no traces"
    return _columns(rows, right=set(range(1, 6)), width=width)


def slowest_table(traces: Iterable[Trace], n: int = 10, width: int = DEFAULT_WIDTH) -> str:
    """The `n` slowest traces, a line each: duration, status, trace id, entry point (cut to fit)."""
    return "\n".join(_cut(f"{t.duration_ms:9.1f} ms  {t.status:<6}  {t.id}  {t.entry}", width)
                     for t in sorted(traces, key=lambda t: t.duration_ms, reverse=True)[:n]) or "no traces"


def cost_table(costs: Iterable[FunctionCost], width: int = DEFAULT_WIDTH) -> str:
    rows = [["FUNCTION", "MB", "CALLS", "COLD", "ERRORS", "P50 MS", "P99 MS", "$/MILLION"]]
    for c in costs:
        rows.append([c.function, str(c.memory_mb), str(c.invocations), str(c.cold_starts), str(c.errors),
                     f"{c.p50_ms:.1f}", f"{c.p99_ms:.1f}", f"{c.cost_per_million:,.2f}"])
    if len(rows) == 1:
        return "no function invocations in these traces"
    return _columns(rows, right=set(range(1, 8)), width=width)
