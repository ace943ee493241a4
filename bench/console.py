"""The trace viewer's weight: the service map page against the trace list, with 10,000 segments.

Builds a window of synthetic segment documents shaped as the local stack records them (an order's
POST /orders with its PutItem and SendMessage, the consumer batch linked to up to 10 of them with
its BatchGetItem, TransactWriteItems and StartExecution per record, the saga's three step
functions under the record, the buyer's polling GETs, a few POST /products and failures), as
BatchGetTraces returns them (JSON strings). Rounds alternate the two pages; each is timed from
the raw documents (assemble + compute + render, what a page load costs when the reader holds no
trace yet) and from assembled traces (what it costs once the reader keeps settled traces).
Prints medians and the ratio map / list per round, and their median. No I/O, no stack.

    .venv/bin/python bench/console.py [--segments 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import service_map, trace_pages  # noqa: E402
from devstack.traces import Trace, assemble, collector_paused, function_costs, select  # noqa: E402

QUEUE = "http://127.0.0.1:5000/123456789012/storefront-dev-OrdersQueue"
T0 = 1_800_000_000.0


class _Ids:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def entity(self) -> str:
        return f"{self._random.getrandbits(64):016x}"

    def trace(self, at: float) -> str:
        return f"1-{int(at):08x}-{self._random.getrandbits(96):024x}"


def _aws(ids: _Ids, service: str, operation: str, start: float, ms: float, **fields: Any) -> dict[str, Any]:
    return {"id": ids.entity(), "name": service, "namespace": "aws", "start_time": start, "end_time": start + ms / 1000,
            "http": {"response": {"status": 200}}, "aws": {"operation": operation, "region": "us-east-1",
                                                           "request_id": "r" * 52, **fields}}


def _function(ids: _Ids, trace_id: str, name: str, start: float, end: float, children: list[dict[str, Any]],
              **extra: Any) -> dict[str, Any]:
    return {"name": name, "id": ids.entity(), "trace_id": trace_id, "start_time": start, "end_time": end,
            "origin": "AWS::Lambda::Function", **extra,
            "subsegments": [{"id": ids.entity(), "name": "Invocation", "start_time": start, "end_time": end},
                            *children]}


def window(segments: int, seed: int = 7) -> list[dict[str, Any]]:
    """BatchGetTraces elements holding about `segments` segment documents in all."""
    ids = _Ids(seed)
    rng = random.Random(seed)
    traces: list[dict[str, Any]] = []
    count = 0
    at = T0
    pending: list[tuple[str, str, str, str, float]] = []  # (trace, route id, message id, order id, sent)

    def add(trace_id: str, *documents: dict[str, Any]) -> None:
        nonlocal count
        traces.append({"Id": trace_id, "Segments": [{"Id": d["id"], "Document": json.dumps(d)} for d in documents]})
        count += len(documents)

    while count < segments:
        at += rng.expovariate(20)
        kind = rng.random()
        if kind < 0.04:  # a product
            trace_id = ids.trace(at)
            route = {"id": ids.entity(), "name": "POST /products", "start_time": at, "end_time": at + 0.02,
                     "annotations": {"product_id": f"p-{count}", "owner": "seller"},
                     "subsegments": [_aws(ids, "dynamodb", "PutItem", at + 0.005, 8,
                                          table_name="storefront-dev-ProductsTable")]}
            add(trace_id, _function(ids, trace_id, "api_handler", at, at + 0.021, [route]))
        elif kind < 0.35:  # an order
            trace_id, order_id = ids.trace(at), f"o-{count}"
            fault = rng.random() < 0.01
            send = _aws(ids, "sqs", "SendMessage", at + 0.012, rng.uniform(4, 12), queue_url=QUEUE,
                        message_id=f"m-{order_id}")
            route = {"id": ids.entity(), "name": "POST /orders", "start_time": at, "end_time": at + 0.03,
                     "annotations": {"order_id": order_id, "product_id": "p-1", "owner": "buyer"},
                     "subsegments": [_aws(ids, "dynamodb", "PutItem", at + 0.002, rng.uniform(4, 10),
                                          table_name="storefront-dev-OrdersTable"), send],
                     **({"fault": True} if fault else {})}
            add(trace_id, _function(ids, trace_id, "api_handler", at, at + 0.031, [route]))
            pending.append((trace_id, route["id"], f"m-{order_id}", order_id, send["end_time"]))
        else:  # the buyer polling an order
            trace_id = ids.trace(at)
            order_id = pending[-1][3] if pending else "o-0"
            route = {"id": ids.entity(), "name": "GET /orders/{order_id}", "start_time": at, "end_time": at + 0.01,
                     "annotations": {"order_id": order_id, "owner": "buyer"},
                     "subsegments": [_aws(ids, "dynamodb", "GetItem", at + 0.002, rng.uniform(3, 8),
                                          table_name="storefront-dev-OrdersTable")]}
            add(trace_id, _function(ids, trace_id, "api_handler", at, at + 0.011, [route]))
        if len(pending) >= 10 or (pending and rng.random() < 0.2):  # the consumer takes a batch
            batch, pending = pending[:10], pending[10:]
            start = max(p[4] for p in batch) + rng.uniform(0.05, 1.5)
            trace_id = ids.trace(start)
            consumer_id = ids.entity()
            records, steps = [], []
            t = start + 0.01
            for producer, route_id, message_id, order_id, _ in batch:
                record_id = ids.entity()
                records.append({"id": record_id, "name": "## consume_orders record", "start_time": t,
                                "end_time": t + 0.05,
                                "annotations": {"message_id": message_id, "order_id": order_id, "outcome": "reserved"},
                                "subsegments": [_aws(ids, "dynamodb", "TransactWriteItems", t + 0.001, 20),
                                                _aws(ids, "states", "StartExecution", t + 0.025, 20)]})
                s = t + 0.3
                for step, calls in (("order_saga_payment", 4), ("order_saga_order", 2), ("order_saga_notify", 3)):
                    children = [_aws(ids, "dynamodb", "GetItem" if i == 0 else "UpdateItem", s + 0.01 * (i + 1), 8,
                                     table_name="storefront-dev-OrdersTable") for i in range(calls)]
                    steps.append(_function(ids, trace_id, f"storefront-dev-{step}", s, s + 0.1, children,
                                           parent_id=record_id))
                    s += 0.15
                t += 0.06
            handler = {"id": ids.entity(), "name": "## consume_orders", "start_time": start + 0.005, "end_time": t,
                       "subsegments": [_aws(ids, "dynamodb", "BatchGetItem", start + 0.006, 5,
                                            table_names="dict_keys(['storefront-dev-ProductsTable'])"), *records]}
            segment = _function(ids, trace_id, "storefront-dev-consume_orders", start, t + 0.001, [handler],
                                links=[{"trace_id": p[0], "id": p[1]} for p in batch])
            segment["id"] = consumer_id
            add(trace_id, segment, *steps)
    return traces


def _time(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def list_page(traces: list[Trace]) -> str:
    chosen = select(traces)
    return trace_pages.list_page(chosen, total=len(traces), entries=sorted({t.entry for t in traces}),
                                 costs=function_costs(chosen, memory_mb=lambda f: 512, is_api=lambda f: False),
                                 filter_text="", entry="", errors_only=False, minutes=60)


def map_page(traces: list[Trace]) -> str:
    chosen = select(traces)
    return trace_pages.map_page(service_map.build(chosen), service_map.entry_stats(chosen), traces=len(chosen),
                                minutes=60)


def _paused(make: Callable[[], str]) -> str:
    with collector_paused:
        return make()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    raw = window(args.segments)
    segments = sum(len(t["Segments"]) for t in raw)
    assembled = [assemble(t) for t in raw]
    drawn = service_map.build(assembled)
    print(f"window: {segments:,} segments in {len(raw):,} traces; the map: {len(drawn.nodes)} nodes, "
          f"{len(drawn.edges)} edges, {sum(e.count for e in drawn.edges.values()):,} measured calls")
    print(f"page sizes: list {len(list_page(assembled)) / 1e6:.2f} MB, map {len(map_page(assembled)) / 1e6:.2f} MB")
    results: dict[str, list[float]] = {k: [] for k in ("list cold", "map cold", "list warm", "map warm")}
    for round_ in range(args.rounds):
        order = [("list", list_page), ("map", map_page)]
        if round_ % 2:
            order.reverse()
        for name, page in order:
            # As the console makes a page: the garbage collector paused (devstack/traces.py).
            results[f"{name} cold"].append(_time(lambda: _paused(lambda: page([assemble(t) for t in raw]))))
            results[f"{name} warm"].append(_time(lambda: _paused(lambda: page(assembled))))
    for state in ("cold", "warm"):
        lists, maps = results[f"list {state}"], results[f"map {state}"]
        ratios = [m / b for m, b in zip(maps, lists)]
        what = "from raw documents (assemble + page)" if state == "cold" else "from assembled traces"
        print(f"{state} ({what}): list page median {statistics.median(lists) * 1000:.0f} ms, map page median "
              f"{statistics.median(maps) * 1000:.0f} ms; map / list per round "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
