"""Traces as an operator reads them, assembled from X-Ray's own documents (pure: no I/O).

Input is what BatchGetTraces returns (`{"Id", "Segments": [{"Id", "Document"}]}`), so the same
code serves the local stack (moto) and real X-Ray. moto evaluates no filter expressions and
returns summaries without annotations, so filtering happens here, on the full documents.

The shapes read:
- Lambda's AWS::Lambda::Function segments (written by Lambda on AWS, by devstack/lambda_tracing.py
  locally), whose `Initialization` subsegment marks a cold start, and on AWS also Lambda's
  AWS::Lambda (service) segments;
- `cold_start` annotations the tracer sets on a container's first invocation;
- `links` (`[{"trace_id", "id"}]`) on a segment: the producer traces an SQS-triggered invocation
  was linked to.
"""

from __future__ import annotations

import gc
import json
import math
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from operator import methodcaller
from typing import Any, Callable, Iterable, Mapping

from pydantic_core import from_json

__all__ = [
    "assemble_all", "collector_paused", "SEARCH_KEYS", "segment_documents", "resource_name", "Span", "Invocation", "Trace", "Clause", "FilterError", "FunctionCost", "assemble", "parse_filter",
    "matches", "select", "related", "linked", "function_costs", "percentile", "handler_name",
    "LAMBDA_REQUEST_PRICE", "LAMBDA_GB_SECOND_PRICE", "API_GATEWAY_REST_PRICE",
]

# API.md's searchable annotations: the ones "related traces" are found by.
SEARCH_KEYS = ("order_id", "product_id", "image_id", "job_id", "owner")

LAMBDA_REQUEST_PRICE = 0.20 / 1_000_000  # USD per request
# USD per GB-second on arm64, the functions' architecture (.chalice/config.json); x86 is 0.0000166667.
LAMBDA_GB_SECOND_PRICE = 0.0000133334
API_GATEWAY_REST_PRICE = 3.50 / 1_000_000  # USD per REST API call

_FUNCTION_ORIGIN = "AWS::Lambda::Function"


# Not frozen: a frozen dataclass sets each of these fields through object.__setattr__, which made
# building the spans about a third of assembling a trace (11 µs a span). Nothing changes a span.
@dataclass(slots=True, unsafe_hash=True)
class Span:
    """One segment or subsegment, placed in its trace's waterfall."""

    id: str
    name: str
    start: float
    end: float
    depth: int
    segment: str  # the name of the segment it belongs to (the function, locally)
    kind: str  # "segment" | "subsegment" | "aws" (an AWS call) | "remote"
    error: bool = False
    fault: bool = False
    throttle: bool = False
    annotations: Mapping[str, Any] = field(default_factory=dict)
    cause: str = ""
    trace_id: str = ""
    parent: str = ""  # the parent entity's id (a segment's parent_id may be in another segment)
    service: str = ""  # an AWS call's service as the SDK names it ("dynamodb", "sqs", "states")
    operation: str = ""  # an AWS call's operation ("PutItem")
    resource: str = ""  # what an AWS call acted on: a table, queue, topic, bucket ("" when not recorded)
    message_id: str = ""  # the id SQS gave a sent message
    links: tuple[tuple[str, str], ...] = ()  # a segment's links: (trace id, linked entity id)
    origin: str = ""  # a segment's origin ("AWS::Lambda::Function")

    @property
    def duration_ms(self) -> float:
        return round((self.end - self.start) * 1000, 1)

    @property
    def status(self) -> str:
        return "fault" if self.fault else "error" if self.error else "throttle" if self.throttle else "ok"


# Not frozen, as Span: one per function segment, and nothing changes one.
@dataclass(slots=True, unsafe_hash=True)
class Invocation:
    """One function invocation found in a trace (for cost and cold starts)."""

    function: str
    duration_ms: float
    cold: bool
    failed: bool


@dataclass(frozen=True)
class Trace:
    id: str
    start: float
    end: float
    entry: str
    status: str
    annotations: Mapping[str, tuple[Any, ...]]  # every value each key takes anywhere in the trace
    spans: tuple[Span, ...]
    links: tuple[str, ...]  # trace ids this trace's invocations were linked to (their producers)
    invocations: tuple[Invocation, ...]

    @property
    def duration_ms(self) -> float:
        return round((self.end - self.start) * 1000, 1)

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.function for i in self.invocations))

    def annotation(self, key: str) -> str:
        """The key's values as one display string ("" when absent)."""
        return ", ".join(str(v) for v in self.annotations.get(key, ()))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start": self.start, "duration_ms": self.duration_ms, "entry": self.entry,
                "status": self.status, "segments": len({s.segment for s in self.spans if s.depth == 0}),
                "annotations": {k: list(v) if len(v) > 1 else v[0] for k, v in self.annotations.items()},
                "links": list(self.links), "functions": list(self.functions)}


def _parse(document: str) -> Any:
    """One segment document's JSON.

    pydantic-core's parser (jiter; pinned in requirements/run.txt, through pydantic) reads X-Ray's
    documents in about 60% of json.loads' time, and parsing is the largest single part of a first
    page load. It gives the same values (floats included); what it refuses and json reads (a lone
    surrogate escape) goes to json, so a document that parsed before still parses the same.
    """
    try:
        return from_json(document)
    except ValueError:
        return json.loads(document)


def segment_documents(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trace's segment documents, with subsegments the SDK streamed apart put back in place.

    The SDK sends a subsegment as its own document (`"type": "subsegment"`, naming its
    `parent_id`) once its segment holds many, and on Lambda every one (the function segment is
    Lambda's); X-Ray joins them to their segment, moto does not.
    """
    documents = []
    for segment in raw.get("Segments", []):
        document = segment.get("Document")
        documents.append(_parse(document) if isinstance(document, str) else dict(document or {}))
    streamed = [d for d in documents if d.get("type") == "subsegment"]
    if not streamed:  # the usual case (the local stack's SDK streams none): nothing to index or place
        return documents
    whole = [d for d in documents if d.get("type") != "subsegment"]
    entities: dict[str, dict[str, Any]] = {}

    def index(entity: dict[str, Any]) -> None:
        entities[str(entity.get("id", ""))] = entity
        for child in entity.get("subsegments", []):
            index(child)

    for document in whole:
        index(document)
    while streamed:
        placed = [d for d in streamed if d.get("parent_id") in entities]
        if not placed:
            break
        for document in placed:
            parent = entities[document["parent_id"]]
            parent["subsegments"] = [c for c in parent.get("subsegments", []) if c.get("id") != document.get("id")]
            parent["subsegments"].append(document)
            index(document)
        streamed = [d for d in streamed if d not in placed]
    return whole + streamed  # a subsegment whose parent never arrived still shows, on its own


def _cause(entity: Mapping[str, Any]) -> str:
    cause = entity.get("cause")
    if not isinstance(cause, dict):
        return ""
    for exception in cause.get("exceptions", []):
        message = exception.get("message") or ""
        return f"{exception.get('type', 'Exception')}: {message}".strip(": ")
    return ""


def _last_part(value: str, separator: str) -> str:
    return value.rstrip(separator).rsplit(separator, 1)[-1]


_LISTED = re.compile(r"'([^']+)'")


def resource_name(aws: Mapping[str, Any]) -> str:
    """What an AWS call acted on, from the `aws` fields the X-Ray SDK records ("" when none).

    The SDK records only what its parameter whitelist names (aws_xray_sdk/ext/resources/
    aws_para_whitelist.json): `table_name` (`table_names` for batch calls, written as
    "dict_keys(['a', 'b'])"), `queue_url`, `topic_arn`, `bucket_name`, `function_name`. The app's
    tracer (chalicelib/adapters/tracing.py) adds what the whitelist cannot name: a transaction's
    `table_names`, PutEvents' `event_bus_name`, a `state_machine_arn`, `secret_id`, `user_pool_id`
    and SES's `email_identity`.
    """
    for key in ("table_name", "bucket_name", "function_name"):
        if aws.get(key):
            return str(aws[key])
    if aws.get("table_names"):
        names = aws["table_names"]
        listed = names if isinstance(names, list) else _LISTED.findall(str(names)) or [str(names)]
        return ", ".join(sorted(str(n) for n in listed))
    if aws.get("queue_url"):
        return _last_part(str(aws["queue_url"]), "/")
    for key in ("topic_arn", "state_machine_arn", "event_bus_arn", "event_bus_name", "secret_id", "user_pool_id",
                "email_identity", "resource_arn"):
        if aws.get(key):
            return _last_part(str(aws[key]), ":")
    return ""


_NO_AWS: Mapping[str, Any] = {}
# What the spans without annotations (most: the AWS calls) share, rather than an empty dict each:
# one allocation less per span, and the garbage collector runs by allocations (a first load makes
# 50,000 spans, and collections were a fifth of its time). Span.annotations is a read-only Mapping.
_NO_ANNOTATIONS: Mapping[str, Any] = {}
_BY_START = methodcaller("get", "start_time", 0)  # a sort key in C: documents have thousands of entities


def _links(links: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(link["trace_id"]), str(link.get("id", ""))) for link in links
                 if isinstance(link, dict) and link.get("trace_id"))


def _walk(document: Mapping[str, Any], trace_id: str) -> list[Span]:
    """A segment document and its subsegments as spans, depth first, siblings by start time.

    The hottest loop of a first page load (every entity of every document): one function, no
    per-entity helper calls but the rare ones, and Span built with positional arguments (half
    the cost of keywords), in the order of its fields.
    """
    segment = str(document.get("name", ""))
    spans: list[Span] = []
    stack: list[tuple[Mapping[str, Any], int, str]] = [(document, 0, "")]
    while stack:
        entity, depth, above = stack.pop()
        get = entity.get
        name = str(get("name", ""))
        start = float(get("start_time", 0))
        cause = get("cause")
        notes = get("annotations")
        annotations = dict(notes) if notes else _NO_ANNOTATIONS
        if depth == 0:
            links = get("links")
            span = Span(str(get("id", "")), name, start, float(get("end_time", start)), 0, segment, "segment",
                        bool(get("error")), bool(get("fault")), bool(get("throttle")),
                        annotations, _cause(entity) if cause else "", trace_id,
                        str(get("parent_id") or above), "", "", "", "", _links(links) if links else (),
                        str(get("origin") or ""))
        else:
            aws = get("aws") or _NO_AWS
            operation = str(aws.get("operation") or "") if aws else ""
            namespace = get("namespace")
            if depth == 1 and name == "Initialization":
                kind = "init"  # Lambda's cold start: the container started and the code was imported
            elif namespace == "aws":
                kind = "aws"
            elif namespace == "remote":
                kind = "remote"
            else:
                kind = "subsegment"
            span = Span(str(get("id", "")), f"{name} {operation}" if operation else name,  # "dynamodb PutItem"
                        start, float(get("end_time", start)), depth, segment, kind,
                        bool(get("error")), bool(get("fault")), bool(get("throttle")),
                        annotations, _cause(entity) if cause else "", trace_id,
                        str(get("parent_id") or above), name if aws else "", operation,
                        resource_name(aws) if aws else "", str(aws.get("message_id") or "") if aws else "")
        spans.append(span)
        children = get("subsegments")
        if children:
            below, span_id = depth + 1, span.id
            # Pushed latest first, so they are popped (and listed) in start order, ties as recorded
            # (which sorted(reverse=True) would not give: it keeps ties in their order too).
            stack.extend([(child, below, span_id) for child in reversed(sorted(children, key=_BY_START))])
    return spans


def _ordered(walked: list[tuple[dict[str, Any], list[Span]]]) -> list[tuple[dict[str, Any], list[Span]]]:
    """Segments (with their spans) in waterfall order: each after its parent's segment, siblings by
    start time."""
    ids_to_segment: dict[str, int] = {}
    for index, (_, spans) in enumerate(walked):
        for span in spans:
            ids_to_segment[span.id] = index
    children: dict[int | None, list[int]] = defaultdict(list)
    for index, (document, _) in enumerate(walked):
        parent = ids_to_segment.get(document.get("parent_id", ""))
        children[parent if parent != index else None].append(index)
    order: list[int] = []
    placed: set[int] = set()

    def visit(parent: int | None) -> None:
        for index in sorted(children.get(parent, []), key=lambda i: walked[i][0].get("start_time", 0)):
            if index not in placed:
                placed.add(index)
                order.append(index)
                visit(index)

    visit(None)
    order += [i for i in range(len(walked)) if i not in placed]  # cycles: keep everything
    return [walked[i] for i in order]


def _invocation_ms(document: Mapping[str, Any]) -> float:
    # On AWS the function segment also spans Initialization and Overhead; Invocation is the handler.
    for child in document.get("subsegments", []):
        if child.get("name") == "Invocation" and "end_time" in child:
            return float(child["end_time"] - child["start_time"]) * 1000
    return float(document.get("end_time", document.get("start_time", 0)) - document.get("start_time", 0)) * 1000


class _PausedCollector:
    """The cyclic garbage collector off while any page is being made (pages may be made by two
    threads at once: the last one out turns it back on, if it was on)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


# A first load makes some 50,000 spans that all live on, in no reference cycle; the collector's
# passes over them (run by the count of allocations) were a fifth of a load (bench/console.py).
# Reference counting still frees what dies; the collector runs again once the page is made.
collector_paused = _PausedCollector()


def assemble_all(raws: Iterable[Mapping[str, Any]]) -> list[Trace]:
    """`assemble` of each, with the collector paused."""
    with collector_paused:
        return [assemble(raw) for raw in raws]


def assemble(raw: Mapping[str, Any]) -> Trace:
    """A Trace from one element of BatchGetTraces' `Traces`."""
    trace_id = str(raw.get("Id", ""))
    # Each document is walked once: a page of the viewer assembles thousands of them.
    walked = [(d, _walk(d, trace_id)) for d in segment_documents(raw)]
    if len(walked) > 1:  # a single segment is in order already
        walked = _ordered(walked)
    documents = [d for d, _ in walked]
    spans: list[Span] = []
    annotations: dict[str, dict[Any, None]] = defaultdict(dict)
    links: dict[str, None] = {}
    invocations = []
    for document, own in walked:
        spans += own
        # One pass over the segment's spans for its annotations and its invocation's figures.
        cold = failed = False
        for span in own:
            if span.annotations:  # most spans (the AWS calls) have none
                for key, value in span.annotations.items():
                    annotations[key][value] = None
                cold = cold or span.annotations.get("cold_start") is True
            cold = cold or (span.depth == 1 and span.name == "Initialization")
            # Our own spans only: an AWS call marked as an error is often expected (a conditional
            # write that lost), and the handler decides what it means.
            failed = failed or ((span.fault or span.error) and span.kind in ("segment", "subsegment"))
        for linked_trace, _ in own[0].links if own else ():
            if linked_trace != trace_id:
                links[linked_trace] = None
        if document.get("origin") == _FUNCTION_ORIGIN and "end_time" in document:
            invocations.append(Invocation(str(document.get("name", "")), _invocation_ms(document), cold, failed))
    if not spans:
        return Trace(trace_id, 0.0, 0.0, "", "ok", {}, (), (), ())
    start = min(s.start for s in spans)
    end = max(s.end for s in spans)
    # The entry point is the first function's handler: on AWS, Lambda's own AWS::Lambda segment
    # (and API Gateway's, when traced) come first but say less.
    functions = [d for d in documents if d.get("origin") == _FUNCTION_ORIGIN]
    first = min(functions or documents, key=_BY_START)
    handler = next((c for c in sorted(first.get("subsegments", []), key=_BY_START)
                    if c.get("name") not in ("Initialization", "Invocation", "Overhead")), None)
    entry = f"{first.get('name', '')} {handler['name']}" if handler else str(first.get("name", ""))
    status = "ok"
    if any(s.fault or s.error or s.throttle for s in spans):  # one pass for the many traces that are fine
        status = ("fault" if any(s.fault for s in spans) else "error" if any(s.error for s in spans)
                  else "throttle")
    return Trace(id=trace_id, start=start, end=end, entry=entry, status=status,
                 annotations={k: tuple(v) for k, v in annotations.items()}, spans=tuple(spans),
                 links=tuple(links), invocations=tuple(invocations))


# -- filtering --------------------------------------------------------------------------------

class FilterError(ValueError):
    """A filter expression this viewer does not understand."""


@dataclass(frozen=True)
class Clause:
    key: str
    op: str  # "=" or "!="
    value: Any


_CLAUSE = re.compile(
    r'\s*(?:annotation\.)?([A-Za-z_][\w]*)\s*(!=|=)\s*("(?:[^"\\]|\\.)*"|true|false|-?\d+(?:\.\d+)?)\s*', re.I)


def parse_filter(text: str | None) -> list[Clause]:
    """Clauses of `key = "value" AND other != 3` (X-Ray's `annotation.key` spelling is accepted).

    Raises FilterError naming what it could not read.
    """
    text = (text or "").strip()
    if not text:
        return []
    clauses = []
    for part in re.split(r"\s+(?:and|AND|&&)\s+", text):
        match = _CLAUSE.fullmatch(part)
        if not match:
            raise FilterError(f'cannot read {part.strip()!r}: write key = "value" (joined with AND)')
        key, op, literal = match.groups()
        if literal.startswith('"'):
            value: Any = json.loads(literal)
        elif literal.lower() in ("true", "false"):
            value = literal.lower() == "true"
        else:
            value = float(literal) if "." in literal else int(literal)
        clauses.append(Clause(key, op, value))
    return clauses


def _holds(trace: Trace, clause: Clause) -> bool:
    values = trace.annotations.get(clause.key, ())
    found = any(v == clause.value or str(v) == str(clause.value) for v in values)
    return found if clause.op == "=" else not found


def matches(trace: Trace, clauses: Iterable[Clause] = (), *, entry: str = "", errors_only: bool = False) -> bool:
    """Whether the trace passes every clause, names `entry` in its entry point, and (if asked) failed."""
    if entry and entry.lower() not in trace.entry.lower():
        return False
    if errors_only and trace.status == "ok":
        return False
    return all(_holds(trace, c) for c in clauses)


def select(traces: Iterable[Trace], clauses: Iterable[Clause] = (), *, entry: str = "",
           errors_only: bool = False) -> list[Trace]:
    """The matching traces, newest first."""
    clauses = list(clauses)
    chosen = [t for t in traces if matches(t, clauses, entry=entry, errors_only=errors_only)]
    return sorted(chosen, key=lambda t: t.start, reverse=True)


# -- following one user action ----------------------------------------------------------------

def linked(trace: Trace, traces: Iterable[Trace]) -> tuple[list[Trace], list[Trace]]:
    """(upstream, downstream): the traces `trace` was linked from, and those linked from it."""
    by_id = {t.id: t for t in traces}
    upstream = [by_id[i] for i in trace.links if i in by_id]
    downstream = sorted((t for t in by_id.values() if trace.id in t.links), key=lambda t: t.start)
    return upstream, downstream


def related(trace: Trace, traces: Iterable[Trace]) -> dict[str, list[Trace]]:
    """Other traces sharing one of its searchable annotations, by `key = "value"`, oldest first."""
    found: dict[str, list[Trace]] = {}
    others = [t for t in traces if t.id != trace.id]
    for key in SEARCH_KEYS:
        for value in trace.annotations.get(key, ()):
            sharing = sorted((t for t in others if value in t.annotations.get(key, ())), key=lambda t: t.start)
            if sharing:
                found[f"{key} = {json.dumps(value)}"] = sharing
    return found


# -- cost per function ------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def handler_name(function: str, *, app: str, stage: str) -> str:
    """The handler name of a function name: "storefront-dev-consume_orders" -> "consume_orders".

    Chalice names the API's function "<app>-<stage>" (its handler is "api_handler"); chalice local
    calls it "api_handler" itself.
    """
    if function in (f"{app}-{stage}", "api_handler", app):
        return "api_handler"
    return function.removeprefix(f"{app}-{stage}-")


@dataclass(frozen=True)
class FunctionCost:
    function: str
    memory_mb: int
    invocations: int
    cold_starts: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_billed_ms: float
    api: bool

    @property
    def cost_per_million(self) -> float:
        """USD per million invocations: requests, GB-seconds at the memory, API Gateway for the API."""
        gb_seconds = self.memory_mb / 1024 * self.mean_billed_ms / 1000
        per_call = LAMBDA_REQUEST_PRICE + gb_seconds * LAMBDA_GB_SECOND_PRICE
        if self.api:
            per_call += API_GATEWAY_REST_PRICE
        return round(per_call * 1_000_000, 2)

    def as_dict(self) -> dict[str, Any]:
        return {"function": self.function, "memory_mb": self.memory_mb, "invocations": self.invocations,
                "cold_starts": self.cold_starts, "errors": self.errors, "p50_ms": round(self.p50_ms, 1),
                "p99_ms": round(self.p99_ms, 1), "mean_billed_ms": round(self.mean_billed_ms, 1),
                "api": self.api, "cost_per_million_usd": self.cost_per_million}


def function_costs(traces: Iterable[Trace], *, memory_mb: Callable[[str], int],
                   is_api: Callable[[str], bool]) -> list[FunctionCost]:
    """Per function seen in `traces`: invocations, cold starts, errors, p50/p99, cost per million.

    `memory_mb(function)` gives its configured memory; Lambda bills each invocation's duration
    rounded up to the millisecond.
    """
    by_function: dict[str, list[Invocation]] = defaultdict(list)
    for trace in traces:
        for invocation in trace.invocations:
            by_function[invocation.function].append(invocation)
    costs = []
    for function, calls in sorted(by_function.items()):
        durations = [c.duration_ms for c in calls]
        costs.append(FunctionCost(
            function=function, memory_mb=memory_mb(function), invocations=len(calls),
            cold_starts=sum(c.cold for c in calls), errors=sum(c.failed for c in calls),
            p50_ms=percentile(durations, 50), p99_ms=percentile(durations, 99),
            mean_billed_ms=sum(math.ceil(d) for d in durations) / len(durations), api=is_api(function)))
    return costs
