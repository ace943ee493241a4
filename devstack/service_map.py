"""The service map, queue time and latency per entry point, from assembled traces (pure: no I/O).

Nodes come from what the segments say, never from a list of this app's resources: a segment is a
node by its origin (`AWS::Lambda::Function` -> a function), an AWS call's target by its service
and the resource name the X-Ray SDK recorded (`dynamodb` + `table_name` -> a table), a remote
call by its name. A call that names no resource (a program whose tracer records only the SDK's
whitelist, which names none for TransactWriteItems, StartExecution, PutEvents) goes to one node
for its service, as in X-Ray's own map.

Edges:
- a call: a segment's AWS or remote call -> its target (count, latency, errors from the call);
- a trigger: what started a segment -> the segment. A segment linked to producer traces (an SQS
  batch) is started by each producer's sending call (SendMessage, Publish, PutEvents, ...), found
  under the linked entity; a segment whose parent is another segment's subsegment (a Step
  Functions task, a synchronous invoke) by the last such call under that parent; one with
  neither, by `clients` (an API's) or an `untraced trigger` (a schedule, a stream, a presigned
  upload: what started it left no trace). A message's trigger latency is the time it waited (the
  send's end to the consumer's start: queue time); a task's is the task's run.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from devstack.traces import SEARCH_KEYS, Span, Trace, percentile

__all__ = [
    "Node", "Call", "Edge", "ServiceMap", "EntryStats", "build", "queue_spans", "entry_stats", "fold_polling",
    "HISTOGRAM_BOUNDS_MS", "CLIENTS", "UNTRACED", "layout", "short_names", "untraced_gaps", "with_gaps",
]

CLIENTS = "client:clients"
UNTRACED = "trigger:untraced trigger"
_FUNCTION_ORIGIN = "AWS::Lambda::Function"
_LAMBDA_SERVICE_ORIGIN = "AWS::Lambda"  # on AWS: Lambda's own segment around the function's
# What a call's service makes its target: anything else keeps the service's own name as its kind.
_KINDS = {"dynamodb": "table", "sqs": "queue", "sns": "topic", "s3": "bucket", "states": "state machine",
          "stepfunctions": "state machine", "events": "event bus", "eventbridge": "event bus",
          "lambda": "function", "kinesis": "stream", "dynamodbstreams": "stream"}
_ORIGIN_KINDS = {"AWS::ApiGateway::Stage": "api gateway", "AWS::StepFunctions::StateMachine": "state machine",
                 "AWS::SNS::Topic": "topic", "AWS::SQS::Queue": "queue", "AWS::Events::EventBus": "event bus"}
# Operations that hand work to someone else: what starts a linked or child segment.
_HANDOFFS = frozenset({"SendMessage", "SendMessageBatch", "Publish", "PublishBatch", "PutEvents", "StartExecution",
                       "StartSyncExecution", "Invoke", "InvokeAsync", "PutObject", "CompleteMultipartUpload",
                       "CopyObject", "PutRecord", "PutRecords"})
# A table write, which a table's stream records (what a domain event is born of).
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
_ROUTE = re.compile(r"^[A-Z]+ /")
HISTOGRAM_BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, math.inf)


@dataclass(frozen=True)
class Node:
    id: str  # "<kind>:<name>"
    kind: str  # "clients", "api", "function", "table", "queue", "topic", "bucket", "state machine", ...
    name: str


# Not frozen, for the reason Span is not (traces.py): a map of 10,000 segments makes some 35,000
# calls, and a frozen dataclass sets each field through object.__setattr__. Nothing changes a call.
@dataclass(slots=True, unsafe_hash=True)
class Call:
    """One measured use of an edge: a call, or a message's wait, or a task's run."""

    duration_ms: float
    trace_id: str
    span_id: str
    start: float
    status: str  # ok | error | fault | throttle
    label: str  # the call ("dynamodb PutItem") or the trigger ("waited in storefront-dev-OrdersQueue")


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # "call" | "message" (waited in a queue, topic, bus) | "task" | "request" (from clients)
    calls: list[Call] = field(default_factory=list)
    _sorted: list[float] = field(default_factory=list, repr=False, compare=False)
    _statuses: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.source}>{self.target}"

    @property
    def count(self) -> int:
        return len(self.calls)

    def _rate(self, *statuses: str) -> float:
        if not self.calls:
            return 0.0
        if sum(self._statuses.values()) != len(self.calls):
            self._statuses = defaultdict(int)
            for call in self.calls:
                self._statuses[call.status] += 1
        return sum(self._statuses[s] for s in statuses) / len(self.calls)

    @property
    def error_rate(self) -> float:
        return self._rate("error", "throttle")

    @property
    def fault_rate(self) -> float:
        return self._rate("fault")

    def percentile(self, q: float) -> float:
        """The nearest-rank percentile of the calls' durations (0 with no calls)."""
        if not self.calls:
            return 0.0
        if len(self._sorted) != len(self.calls):  # sorted once per page, not once per figure
            self._sorted = sorted(c.duration_ms for c in self.calls)
        return self._sorted[max(1, math.ceil(q / 100 * len(self._sorted))) - 1]

    def slowest(self, n: int = 20) -> list[Call]:
        return sorted(self.calls, key=lambda c: c.duration_ms, reverse=True)[:n]

    @property
    def asynchronous(self) -> bool:
        return self.kind in ("message", "task")

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "target": self.target, "kind": self.kind, "count": self.count,
                "p50_ms": round(self.percentile(50), 1), "p99_ms": round(self.percentile(99), 1),
                "error_rate": round(self.error_rate, 4), "fault_rate": round(self.fault_rate, 4)}


@dataclass
class ServiceMap:
    nodes: dict[str, Node]
    edges: dict[str, Edge]
    traces_by_node: dict[str, set[str]]
    unresolved_links: int = 0  # links to producer traces outside the window

    def node_stats(self, node_id: str) -> tuple[int, float, float, float]:
        """(calls into it, p50 ms, p99 ms, error-or-fault rate), over the edges into the node."""
        calls = [c for e in self._into().get(node_id, ()) for c in e.calls]
        if not calls:
            return 0, 0.0, 0.0, 0.0
        durations = [c.duration_ms for c in calls]
        failed = sum(c.status != "ok" for c in calls) / len(calls)
        return len(calls), percentile(durations, 50), percentile(durations, 99), failed

    def _into(self) -> dict[str, list[Edge]]:
        into: dict[str, list[Edge]] = defaultdict(list)
        for edge in self.edges.values():
            into[edge.target].append(edge)
        return into

    def edge(self, source_name: str, target_name: str) -> Edge | None:
        """The edge between the nodes so named (any kind), for tests and people."""
        for edge in self.edges.values():
            if self.nodes[edge.source].name == source_name and self.nodes[edge.target].name == target_name:
                return edge
        return None

    def as_dict(self) -> dict[str, object]:
        return {"nodes": [{"id": n.id, "kind": n.kind, "name": n.name, "traces": len(self.traces_by_node.get(n.id, ()))}
                          for n in self.nodes.values()],
                "edges": [e.as_dict() for e in self.edges.values()], "unresolved_links": self.unresolved_links}


class _Index:
    """One trace's spans by id, with each span's children, built once per trace."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.by_id: dict[str, Span] = {}
        self.children: dict[str, list[Span]] = defaultdict(list)
        for span in trace.spans:
            self.by_id[span.id] = span
            if span.parent and span.depth > 0:  # another segment under a subsegment is not its part
                self.children[span.parent].append(span)

    def subtree(self, span_id: str) -> list[Span]:
        found: list[Span] = []
        children = self.children
        stack = list(children.get(span_id, ()))
        while stack:
            span = stack.pop()
            found.append(span)
            below = children.get(span.id)
            if below:
                stack.extend(below)
        return found

    def segment_of(self, span: Span) -> Span | None:
        """The depth-0 span (segment) a span belongs to."""
        seen = 0
        while span.depth > 0 and seen < 256:
            parent = self.by_id.get(span.parent)
            if parent is None:
                return None
            span, seen = parent, seen + 1
        return span


def _failed(segment: Span, own: list[Span]) -> str:
    """A segment's outcome by its own spans (an AWS call marked error is the handler's to judge)."""
    worst = segment.status
    for span in own:
        if span.kind == "subsegment" and span.status != "ok":
            if span.fault or worst == "ok":
                worst = span.status
    return worst


def _handoff(index: _Index, entity_id: str, before: float, message_ids: set[str],
             from_stream: bool = False) -> Span | None:
    """The call under `entity_id` that started a segment at `before`: the send of one of its
    messages, else the last hand-off (send, publish, start) before it, else the last AWS call.
    A domain event (`from_stream`) was handed off by the table write its stream recorded: the
    last write, even when the writer went on to send or start something else."""
    entity = index.by_id.get(entity_id)
    if entity is not None and entity.kind == "aws":
        return entity
    under = [s for s in (index.subtree(entity_id) if entity is not None else index.trace.spans)
             if s.kind == "aws" and s.start <= before]
    if not under:
        return None
    if message_ids:
        sent = [s for s in under if s.message_id and s.message_id in message_ids]
        if sent:
            return sent[0]
    handoffs = [s for s in under if s.operation in (_WRITES if from_stream else _HANDOFFS)]
    return max(handoffs or under, key=lambda s: s.end)


def _message_ids(own: Iterable[Span]) -> set[str]:
    return {str(s.annotations["message_id"]) for s in own if "message_id" in s.annotations}


def _from_stream(own: Iterable[Span]) -> bool:
    """The segment consumed domain events: its records are annotated with their `event_id`
    (chalicelib/entrypoints/sales_events.py), and the events come from the tables' streams."""
    return any("event_id" in s.annotations for s in own)


def queue_spans(consumer: Trace, producers: Mapping[str, Trace]) -> list[Span]:
    """The time each message of `consumer`'s linked producers waited: one span per link whose
    producer is known, from the send's end to the consumer's start, named after the queue."""
    index = _Index(consumer)
    found = []
    cache: dict[str, _Index] = {}
    for segment in (s for s in consumer.spans if s.depth == 0 and s.links):
        own = list(index.subtree(segment.id))
        ids, from_stream = _message_ids(own), _from_stream(own)
        for trace_id, entity_id in segment.links:
            producer = producers.get(trace_id)
            if producer is None:
                continue
            producer_index = cache.setdefault(trace_id, _Index(producer))
            send = _handoff(producer_index, entity_id, segment.start, ids, from_stream)
            if send is not None:
                found.append(_queue_span(send, segment, consumer.id))
    return found


_LAMBDA_PHASES = ("Initialization", "Invocation", "Overhead")


def untraced_gaps(trace: Trace, min_ms: float = 20.0) -> dict[str, Span]:
    """Blanks of at least `min_ms` inside a subsegment before one of its calls, by the id of the
    span each precedes: time the code spent on its own, with no call recorded. On a cold start
    the blank before a segment's first call is usually the container's first use (the app's
    services bootstrapped, clients made on first use), and is named so."""
    index = _Index(trace)
    cold = {s.parent for s in trace.spans
            if s.depth == 1 and (s.kind == "init" or s.annotations.get("cold_start") is True)}
    found: dict[str, Span] = {}
    first_call: set[str] = set()
    for parent in trace.spans:
        if parent.kind != "subsegment" or parent.depth == 0 or parent.name in _LAMBDA_PHASES:
            continue
        segment = index.segment_of(parent)
        segment_id = segment.id if segment is not None else ""
        cursor = parent.start
        for child in sorted(index.children.get(parent.id, ()), key=lambda c: c.start):
            if (child.start - cursor) * 1000 >= min_ms:
                first = segment_id in cold and segment_id not in first_call
                name = ("untraced, cold start: the container's first use (services bootstrapped, clients made)"
                        if first else "untraced: the code's own time (no call recorded)")
                found[child.id] = Span(id=f"gap-{child.id}", name=name, start=cursor, end=child.start,
                                       depth=child.depth, segment=child.segment, kind="gap", trace_id=trace.id,
                                       parent=parent.id)
            first_call.add(segment_id)
            cursor = max(cursor, child.end)
    return found


def with_gaps(spans: Iterable[Span], gaps: Mapping[str, Span]) -> list[Span]:
    """`spans` with each gap just before the span it precedes."""
    return [shown for span in spans for shown in ((gaps[span.id], span) if span.id in gaps else (span,))]


def _wait(send: Span, segment: Span) -> tuple[str, float, float]:
    """(name, start, end) of the time a message sent by `send` waited before `segment` started."""
    return f"waited in {send.resource or send.service}", send.end, max(segment.start, send.end)


def _queue_span(send: Span, segment: Span, trace_id: str) -> Span:
    name, start, end = _wait(send, segment)
    return Span(id=f"queue-{send.id}-{segment.id}", name=name, start=start, end=end, depth=0,
                segment=segment.segment, kind="queue", trace_id=trace_id, parent=send.id, service=send.service,
                resource=send.resource, annotations={"sent_by": send.name, "trace": send.trace_id})


def _target(span: Span, known: dict[tuple[str, str, str], Node] | None = None) -> Node:
    key = (span.kind, span.service, span.resource or span.name)
    if known is not None and key in known:
        return known[key]
    node = _new_target(span)
    if known is not None:
        known[key] = node
    return node


def _new_target(span: Span) -> Node:
    if span.kind == "remote":
        return Node(f"remote:{span.name}", "remote", span.name)
    kind = _KINDS.get(span.service, span.service or "service")
    # A call to a kind of resource that names none: one node for the service, saying so.
    name = span.resource or (f"{span.service} (name not recorded)" if span.service in _KINDS else span.service)
    return Node(f"{kind}:{name}", kind, name)


def _segment_node(segment: Span, routes: set[str]) -> Node:
    if segment.origin in _ORIGIN_KINDS:
        kind = _ORIGIN_KINDS[segment.origin]
    elif segment.segment in routes:
        kind = "api"
    else:
        kind = "function"
    return Node(f"{kind}:{segment.segment}", kind, segment.segment)


def build(traces: Sequence[Trace]) -> ServiceMap:
    """The map of `traces` (the window), with every edge's calls kept for percentiles and slowest."""
    indexes = {t.id: _Index(t) for t in traces}
    routes = {s.segment for t in traces for s in t.spans if s.depth == 1 and _ROUTE.match(s.name)}
    nodes: dict[str, Node] = {}
    edges: dict[str, Edge] = {}
    traces_by_node: dict[str, set[str]] = defaultdict(set)
    unresolved = 0
    # Each edge by its source's and target's ids, so a call finds its edge without making its key.
    outgoing: dict[str, dict[str, Edge]] = defaultdict(dict)

    def add(source: Node, target: Node, kind: str, call: Call) -> None:
        edge = outgoing[source.id].get(target.id)
        if edge is None:  # the edge's first call
            nodes.setdefault(source.id, source)
            nodes.setdefault(target.id, target)
            key = f"{source.id}>{target.id}"
            edge = edges.get(key)
            if edge is None:
                edge = edges[key] = Edge(source.id, target.id, kind)
            outgoing[source.id][target.id] = edge
        edge.calls.append(call)
        traces_by_node[source.id].add(call.trace_id)
        traces_by_node[target.id].add(call.trace_id)

    clients = Node(CLIENTS, "clients", "clients")
    untraced = Node(UNTRACED, "trigger", "untraced trigger")
    targets: dict[tuple[str, str, str], Node] = {}
    segment_nodes: dict[tuple[str, str], Node] = {}  # by (origin, name): a node per segment made thousands
    for trace in traces:
        index = indexes[trace.id]
        for segment in trace.spans:
            if segment.depth != 0 or segment.origin == _LAMBDA_SERVICE_ORIGIN:
                continue  # a subsegment, or Lambda's own segment: its function segment is the node
            node = segment_nodes.get((segment.origin, segment.segment))
            if node is None:
                node = segment_nodes[segment.origin, segment.segment] = _segment_node(segment, routes)
            nodes.setdefault(node.id, node)
            traces_by_node[node.id].add(trace.id)
            own = index.subtree(segment.id)
            outcome = _failed(segment, own)
            # What started it.
            parent = index.by_id.get(segment.parent) if segment.parent else None
            while parent is not None and parent.depth == 0 and parent.origin == _LAMBDA_SERVICE_ORIGIN:
                parent = index.by_id.get(parent.parent) if parent.parent else None
            if segment.links:
                ids, from_stream = _message_ids(own), _from_stream(own)
                for trace_id, entity_id in segment.links:
                    producer = indexes.get(trace_id)
                    send = _handoff(producer, entity_id, segment.start, ids, from_stream) if producer else None
                    if send is None:
                        unresolved += 1
                        continue
                    name, start, end = _wait(send, segment)  # the queue span's figures, without the span
                    add(_target(send, targets), node, "message",
                        Call(round((end - start) * 1000, 1), trace.id, segment.id, start, outcome, name))
            elif parent is not None:
                caller = index.segment_of(parent)
                send = _handoff(index, parent.id, segment.start, set())
                if send is not None and _target(send, targets).id != node.id:
                    add(_target(send, targets), node, "task", _ran(segment, trace, outcome))
                elif send is None and caller is not None:
                    add(_segment_node(caller, routes), node, "call", _ran(segment, trace, outcome))
            elif node.kind in ("api", "api gateway"):
                add(clients, node, "request", _ran(segment, trace, outcome))
            else:  # a schedule, a stream, an upload through a presigned POST: nothing traced it
                add(untraced, node, "request", _ran(segment, trace, outcome))
            # What it called.
            for span in own:
                if span.kind == "aws" or span.kind == "remote":
                    add(node, _target(span, targets), "call",
                        Call(span.duration_ms, trace.id, span.id, span.start, span.status, span.name))
    return ServiceMap(nodes=nodes, edges=edges, traces_by_node=dict(traces_by_node), unresolved_links=unresolved)


def _ran(segment: Span, trace: Trace, outcome: str) -> Call:
    """A segment's own run, as a call of the edge that started it."""
    return Call(segment.duration_ms, trace.id, segment.id, segment.start, outcome, segment.name)


def layout(service_map: ServiceMap) -> dict[str, tuple[int, int]]:
    """Each node's (column, row): columns by the longest path from a node nothing calls (edges
    that close a cycle are ignored), rows by kind then name, so the flow reads left to right."""
    outgoing: dict[str, list[str]] = defaultdict(list)
    incoming: dict[str, int] = defaultdict(int)
    for edge in service_map.edges.values():
        if edge.source != edge.target:
            outgoing[edge.source].append(edge.target)
            incoming[edge.target] += 1
    column = {n: 0 for n in service_map.nodes}
    # Depth-first order from the roots; an edge back to a node on the current path closes a cycle.
    state: dict[str, int] = {}
    order: list[str] = []
    back: set[tuple[str, str]] = set()

    def visit(root: str) -> None:
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack.pop()
            targets = outgoing.get(node, [])
            if i < len(targets):
                stack.append((node, i + 1))
                target = targets[i]
                if state.get(target) == 1:
                    back.add((node, target))
                elif target not in state:
                    state[target] = 1
                    stack.append((target, 0))
            else:
                state[node] = 2
                order.append(node)

    roots = sorted(n for n in service_map.nodes if incoming.get(n, 0) == 0)
    for node in [*roots, *sorted(service_map.nodes)]:
        if node not in state:
            visit(node)
    for node in reversed(order):  # a topological order once back edges are dropped
        for target in outgoing.get(node, []):
            if (node, target) not in back:
                column[target] = max(column[target], column[node] + 1)
    rows: dict[int, list[str]] = defaultdict(list)
    for node in service_map.nodes:
        rows[column[node]].append(node)
    placed = {}
    for col, members in rows.items():
        members.sort(key=lambda n: (service_map.nodes[n].kind, service_map.nodes[n].name))
        for row, node in enumerate(members):
            placed[node] = (col, row)
    return placed


def short_names(names: Iterable[str]) -> dict[str, str]:
    """Each name without the prefix most names share ("storefront-dev-"), for narrow places."""
    names = list(names)
    prefixes: dict[str, int] = defaultdict(int)
    for name in names:
        parts = name.split("-")
        for i in range(1, len(parts)):
            prefixes["-".join(parts[:i]) + "-"] += 1
    common = max((p for p, n in prefixes.items() if n >= 2), key=lambda p: (prefixes[p], len(p)), default="")
    return {n: (n[len(common):] if common and n.startswith(common) else n) for n in names}


# -- per entry point ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EntryStats:
    entry: str
    count: int
    failed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    histogram: tuple[tuple[float, int], ...]  # (upper bound ms, traces up to it), HISTOGRAM_BOUNDS_MS
    slowest: tuple[Trace, ...]
    newest: Trace

    def as_dict(self) -> dict[str, object]:
        return {"entry": self.entry, "count": self.count, "failed": self.failed, "p50_ms": self.p50_ms,
                "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
                "histogram": [[None if math.isinf(b) else b, n] for b, n in self.histogram],
                "slowest": [t.id for t in self.slowest]}


def entry_stats(traces: Iterable[Trace], slowest: int = 5) -> list[EntryStats]:
    """Per entry point: count, failures, p50/p90/p99, a latency histogram and the slowest traces;
    the busiest entry point first."""
    by_entry: dict[str, list[Trace]] = defaultdict(list)
    for trace in traces:
        by_entry[trace.entry].append(trace)
    found = []
    for entry, members in by_entry.items():
        durations = [t.duration_ms for t in members]
        counts = [0] * len(HISTOGRAM_BOUNDS_MS)
        for duration in durations:
            counts[next(i for i, bound in enumerate(HISTOGRAM_BOUNDS_MS) if duration <= bound)] += 1
        found.append(EntryStats(
            entry=entry, count=len(members), failed=sum(t.status != "ok" for t in members),
            p50_ms=percentile(durations, 50), p90_ms=percentile(durations, 90), p99_ms=percentile(durations, 99),
            histogram=tuple(zip(HISTOGRAM_BOUNDS_MS, counts)),
            slowest=tuple(sorted(members, key=lambda t: t.duration_ms, reverse=True)[:slowest]),
            newest=max(members, key=lambda t: t.start)))
    return sorted(found, key=lambda s: (-s.count, s.entry))


def fold_polling(traces: Sequence[Trace]) -> list[tuple[Trace, int]]:
    """The traces with polling folded: repeated GETs of the same entry point, annotations and
    status show once, as the newest, with how many they were. Order is kept."""
    groups: dict[tuple[object, ...], list[Trace]] = defaultdict(list)
    for trace in traces:
        if " GET /" in f" {trace.entry}":
            key = (trace.entry, trace.status, tuple(trace.annotations.get(k, ()) for k in SEARCH_KEYS))
            groups[key].append(trace)
    keep: dict[str, int] = {}
    folded: set[str] = set()
    for members in groups.values():
        newest = max(members, key=lambda t: t.start)
        keep[newest.id] = len(members)
        folded.update(t.id for t in members if t is not newest)
    return [(t, keep.get(t.id, 1)) for t in traces if t.id not in folded]
