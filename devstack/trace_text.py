"""`make traces`: recent traces as a table, one trace as an indented timeline, cost per function."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from devstack.traces import SEARCH_KEYS, FunctionCost, Trace

__all__ = ["trace_table", "timeline", "cost_table"]


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _columns(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def trace_table(traces: Iterable[Trace]) -> str:
    """Start, entry point, duration, status, key annotations, trace id: one line per trace."""
    rows = [["START (UTC)", "ENTRY POINT", "MS", "STATUS", "ANNOTATIONS", "TRACE ID"]]
    for t in traces:
        notes = " ".join(f"{k}={t.annotation(k)}" for k in SEARCH_KEYS if k in t.annotations)
        rows.append([_time(t.start), t.entry, f"{t.duration_ms:.1f}", t.status, notes, t.id])
    return _columns(rows, right={2}) if len(rows) > 1 else "no traces"


def timeline(trace: Trace, *, upstream: Iterable[Trace] = (), downstream: Iterable[Trace] = ()) -> str:
    """The trace (and those linked to it) as an indented timeline: offset, duration, status, name."""
    shown = [*upstream, trace, *downstream]
    origin = min(t.start for t in shown)
    lines = []
    for member in shown:
        role = "" if member is trace else " (linked)"
        lines.append(f"trace {member.id}{role}  {member.entry}  {member.duration_ms:.1f} ms  {member.status}")
        for span in member.spans:
            notes = " ".join(f"{k}={v}" for k, v in sorted(span.annotations.items()))
            flag = "" if span.status == "ok" else f" [{span.status.upper()}]"
            cause = f"  ! {span.cause}" if span.cause else ""
            lines.append(f"  +{(span.start - origin) * 1000:9.1f} ms {span.duration_ms:9.1f} ms  "
                         f"{'  ' * span.depth}{span.name}{flag}{'  ' + notes if notes else ''}{cause}")
    return "\n".join(lines)


def cost_table(costs: Iterable[FunctionCost]) -> str:
    rows = [["FUNCTION", "MEMORY MB", "INVOCATIONS", "COLD", "ERRORS", "P50 MS", "P99 MS", "$ PER MILLION"]]
    for c in costs:
        rows.append([c.function, str(c.memory_mb), str(c.invocations), str(c.cold_starts), str(c.errors),
                     f"{c.p50_ms:.1f}", f"{c.p99_ms:.1f}", f"{c.cost_per_million:,.2f}"])
    if len(rows) == 1:
        return "no function invocations in these traces"
    return _columns(rows, right=set(range(1, 8)))
