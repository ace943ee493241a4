"""Orders under a burst: 2,000 orders from 16 client threads for a product with stock 500.

Against the running local stack (or one started for the run). Prints: share accepted, API latency
p50/p99, the consumer's highest concurrency against its cap, DynamoDB write calls per order (counted
in the requests' X-Ray traces and the consumer's traces linked to them), time until every order is
terminal, confirmed/rejected counts and the final stock.

    .venv/bin/python bench/load_levelling.py [--orders 2000] [--threads 16] [--stock 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import requests
from boto3.dynamodb.conditions import Attr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack import local_stack, token  # noqa: E402

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--stock", type=int, default=500)
    args = parser.parse_args()

    with local_stack() as e:
        api = e["api"]
        aws = dict(endpoint_url=e["aws_endpoint"], region_name=e["region"],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
        bearer = {"Authorization": f"Bearer {token(e, 'bench-buyer')}"}
        product = requests.post(f"{api}/products", headers=bearer, timeout=30, json={
            "name": "Burst mug", "price_cents": 900, "currency": "EUR", "stock": args.stock}).json()

        statuses: list[int | str] = []
        latencies: list[float] = []
        order_ids: list[str] = []
        trace_ids: list[str] = []
        lock = threading.Lock()
        per_thread = [args.orders // args.threads + (i < args.orders % args.threads) for i in range(args.threads)]

        def client(count: int) -> None:
            session = requests.Session()
            for _ in range(count):
                started = time.perf_counter()
                try:
                    r = session.post(f"{api}/orders", headers=bearer, timeout=30,
                                     json={"product_id": product["id"], "quantity": 1, "payment_method": "pm_card_visa"})
                except requests.RequestException as exc:  # counted as not accepted, never lost
                    with lock:
                        statuses.append(type(exc).__name__)
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    statuses.append(r.status_code)
                    latencies.append(elapsed)
                    if r.status_code == 202:
                        order_ids.append(r.json()["order_id"])
                        trace_ids.append(r.headers.get("X-Amzn-Trace-Id", "").removeprefix("Root="))

        burst_started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in per_thread]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        burst_seconds = time.perf_counter() - burst_started

        table = boto3.resource("dynamodb", **aws).Table(e["tables"]["OrdersTable"])
        # Polling must not load the stack it measures: count what is still queued (moto then
        # serialises a number, not 2,000 items), once a second; read the outcomes once at the end.
        of_this_burst = Attr("product_id").eq(product["id"])
        while time.perf_counter() - burst_started < 300:
            if _count(table, of_this_burst & Attr("status").eq("queued")) == 0:
                break
            time.sleep(1.0)
        outcome = Counter({status: _count(table, of_this_burst & Attr("status").eq(status))
                           for status in ("queued", "confirmed", "rejected")})
        terminal_seconds = time.perf_counter() - burst_started

        final = requests.get(f"{api}/products/{product['id']}", timeout=30).json()
        stats = requests.get(f"{e['trace_viewer']}/api/stats", timeout=30).json()["functions"]["consume_orders"]
        cap = _configured_cap()

        writes, traced = _consumer_writes(boto3.client("xray", **aws), trace_ids)
        accepted = statuses.count(202)
        print(f"burst: {args.orders} orders from {args.threads} threads in {burst_seconds:.1f} s, product stock {args.stock}")
        print(f"  accepted (202)              {accepted}/{args.orders} = {accepted / args.orders:.1%}   (goal 100%)"
              + (f"   other answers: {dict(Counter(s for s in statuses if s != 202))}" if accepted < args.orders else ""))
        print(f"  API latency p50 / p99       {statistics.median(latencies) * 1000:.0f} / {percentile(latencies, 0.99) * 1000:.0f} ms   (goal p99 <= 150 ms)")
        print(f"  consumer max in flight      {stats['max_in_flight']}   cap {cap}   (goal never above)")
        print(f"  DynamoDB writes per order   consumer {writes['consumer'] / max(traced['consumer'], 1):.2f}, "
              f"API {writes['api'] / max(traced['api'], 1):.2f}   (from {traced['consumer']} consumed orders and "
              f"{traced['api']} requests in the traces)")
        print(f"  all terminal after          {terminal_seconds:.1f} s   (goal <= 60 s)")
        print(f"  confirmed / rejected        {outcome['confirmed']} / {outcome['rejected']}   queued left {outcome['queued']}")
        print(f"  final stock                 {final['stock']}   (goal 0, never negative)")


def _count(table, condition) -> int:
    total, kwargs = 0, {"Select": "COUNT", "FilterExpression": condition}
    while True:  # an operator's count, not a user request: a Scan is fine here
        page = table.scan(**kwargs)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _configured_cap() -> int:
    from chalicelib.config import orders_max_concurrency

    return orders_max_concurrency()


def _consumer_writes(xray, trace_ids: list[str]) -> tuple[Counter, Counter]:
    """DynamoDB write calls of the burst: in the orders' API traces, and in the consumer's traces
    linked to them (an SQS-triggered invocation is its own trace, linked to its senders' traces,
    and handles up to a batch of orders). Returns (writes, orders seen) by side."""
    from devstack.trace_reader import TraceReader

    wanted = {t for t in trace_ids if t}
    writes: Counter = Counter()
    orders: Counter = Counter()
    for trace in TraceReader(xray).recent(minutes=30, limit=1_000_000):
        if trace.id in wanted:
            side = "api"
            orders[side] += 1
        elif wanted.intersection(trace.links):
            side = "consumer"
            orders[side] += sum(1 for s in trace.spans if s.name == "## consume_orders record")
        else:
            continue
        writes[side] += sum(1 for s in trace.spans if s.kind == "aws" and s.name.split()[-1] in WRITES)
    return writes, orders


if __name__ == "__main__":
    main()
