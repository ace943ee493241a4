"""Domain events: how long a confirmed order takes to reach its seller's sales, and what the
event backbone sustains, against the running local stack (or one started for the run).

Prints:
- confirmed -> counted in GET /sellers/me/sales, p50 and p99, at a trickle (one order at a
  time) and under a burst of orders from 16 client threads, against the time from intake to
  confirmation measured in the same run (the saga's part: the baseline);
- the events per second one stream consumer (publish_product_events) publishes, draining a
  burst of product writes, against the rate those writes were made at;
- write calls to the sales table per event the projection handled (goal 1), from the traces;
- the rebuild of the read model (`make rebuild-sales`) over N orders seeded into the orders
  table, against one Scan of that table in the same run, and whether it equals the live model.

    .venv/bin/python bench/events.py [--trickle 20] [--burst 500] [--threads 16] [--products 2000]
                                     [--rebuild-orders 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.load_levelling import percentile  # noqa: E402
from bench.stack import local_stack, token  # noqa: E402

POLL_SECONDS = 0.1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trickle", type=int, default=20)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--rebuild-orders", type=int, default=10_000)
    args = parser.parse_args()

    with local_stack() as e:
        aws = dict(endpoint_url=e["aws_endpoint"], region_name=e["region"],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
        seller, buyer = token(e, "bench-events-seller"), token(e, "bench-events-buyer")
        shop = Shop(e["api"], seller, buyer)
        product_id = shop.product("Events mug", stock=1_000_000)
        started = time.time()

        trickle = [shop.order_counted(product_id, expected=n + 1) for n in range(args.trickle)]
        print(f"trickle: {args.trickle} orders one at a time (each confirmed, then counted, before the next)")
        _report(trickle)

        burst = shop.burst(product_id, args.burst, args.threads, already=args.trickle)
        print(f"burst: {args.burst} orders from {args.threads} threads at once")
        _report(burst)

        stats_before = _stats(e)
        _writes_per_event(e, aws, since=started, stats=stats_before)
        _stream_throughput(e, aws, args.products)
        _rebuild(e, aws, shop, args.rebuild_orders)


class Shop:
    """The API as the seller and the buyer use it."""

    def __init__(self, api: str, seller: str, buyer: str) -> None:
        self.api = api
        self.seller = {"Authorization": f"Bearer {seller}"}
        self.buyer = {"Authorization": f"Bearer {buyer}"}

    def product(self, name: str, stock: int) -> str:
        response = requests.post(f"{self.api}/products", headers=self.seller, timeout=30,
                                 json={"name": name, "price_cents": 1200, "currency": "EUR", "stock": stock})
        response.raise_for_status()
        return str(response.json()["id"])

    def place(self, product_id: str, session: Any = requests) -> str:
        response = session.post(f"{self.api}/orders", headers=self.buyer, timeout=30,
                                json={"product_id": product_id, "quantity": 1, "payment_method": "pm_card_visa"})
        response.raise_for_status()
        return str(response.json()["order_id"])

    def sales(self) -> dict[str, Any]:
        response = requests.get(f"{self.api}/sellers/me/sales", headers=self.seller, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(requests.get(f"{self.api}/orders/{order_id}", headers=self.buyer, timeout=30).json())

    def order_counted(self, product_id: str, *, expected: int) -> tuple[float, float]:
        """(intake -> confirmed, confirmed -> counted) of one order, in seconds."""
        order_id = self.place(product_id)
        deadline = time.monotonic() + 120
        while (order := self.order(order_id))["status"] != "confirmed":
            if time.monotonic() > deadline or order["status"] in ("rejected", "payment_failed", "failed"):
                raise SystemExit(f"order {order_id} did not confirm: {order['status']}")
            time.sleep(POLL_SECONDS)
        at = {h["status"]: datetime.fromisoformat(h["at"]).timestamp() for h in order["history"]}
        while self.sales()["totals"]["orders"] < expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"order {order_id} was confirmed but never counted")
            time.sleep(POLL_SECONDS)
        return at["confirmed"] - at["queued"], time.time() - at["confirmed"]

    def burst(self, product_id: str, count: int, threads: int, *, already: int) -> list[tuple[float, float]]:
        """Each order's (intake -> confirmed, confirmed -> counted): the k-th confirmation is
        paired with the moment the seller's count first reached k (counts are sums: which
        order a row counted is not visible, only how many)."""
        counted_at: list[float] = []  # counted_at[k]: when the count first reached already + k + 1
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen = self.sales()["totals"]["orders"] - already
                now = time.time()
                while len(counted_at) < seen:
                    counted_at.append(now)
                time.sleep(POLL_SECONDS)

        placed: list[str] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with requests.Session() as session:
                for _ in range(n):
                    order_id = self.place(product_id, session)
                    with lock:
                        placed.append(order_id)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        clients = [threading.Thread(target=client, args=(count // threads + (i < count % threads),))
                   for i in range(threads)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        deadline = time.monotonic() + 900
        while len(counted_at) < count and time.monotonic() < deadline:
            time.sleep(1)
        stop.set()
        watcher.join()
        confirmed = []
        for order_id in placed:
            at = {h["status"]: datetime.fromisoformat(h["at"]).timestamp() for h in self.order(order_id)["history"]}
            if "confirmed" in at:
                confirmed.append((at["queued"], at["confirmed"]))
        confirmed.sort(key=lambda pair: pair[1])
        if len(counted_at) < len(confirmed):
            print(f"  only {len(counted_at)} of {len(confirmed)} confirmed orders were counted in 15 minutes")
        return [(c - q, counted - c) for (q, c), counted in zip(confirmed, counted_at)]


def _report(pairs: list[tuple[float, float]]) -> None:
    intake = [p[0] for p in pairs]
    counted = [p[1] for p in pairs]
    print(f"  intake -> confirmed     p50 / p99  {statistics.median(intake):6.2f} / {percentile(intake, 0.99):6.2f} s"
          "   (the saga's part: the baseline of this run)")
    print(f"  confirmed -> counted    p50 / p99  {statistics.median(counted):6.2f} / {percentile(counted, 0.99):6.2f} s"
          f"   ({statistics.median(counted) / statistics.median(intake):.2f}x / "
          f"{percentile(counted, 0.99) / percentile(intake, 0.99):.2f}x the baseline)")


def _stats(e: dict) -> dict[str, dict[str, int]]:
    return dict(requests.get(f"{e['trace_viewer']}/api/stats", timeout=30).json()["functions"])


def _writes_per_event(e: dict, aws: dict, *, since: float, stats: dict[str, dict[str, int]]) -> None:
    """Write calls to the sales table in project_sales' traces, per record it was handed."""
    from devstack.traces import segment_documents

    xray = boto3.client("xray", **aws)
    start = datetime.fromtimestamp(since, timezone.utc) - timedelta(seconds=5)
    ids = [s["Id"] for page in xray.get_paginator("get_trace_summaries").paginate(
        StartTime=start, EndTime=datetime.now(timezone.utc)) for s in page["TraceSummaries"]]
    writes = records = 0
    for first in range(0, len(ids), 5):
        for trace in xray.batch_get_traces(TraceIds=ids[first:first + 5])["Traces"]:
            for doc in segment_documents(trace):  # subsegments put back under their parents
                if not doc["name"].endswith("project_sales") or doc.get("origin") != "AWS::Lambda::Function":
                    continue
                for call in _walk(doc):
                    if call.get("name", "").startswith("## project_sales record"):
                        records += 1
                    # The botocore subsegment is named by the endpoint prefix ("dynamodb").
                    elif call.get("namespace") == "aws" and call.get("name") == "dynamodb" and call.get(
                            "aws", {}).get("operation") in (
                            "TransactWriteItems", "UpdateItem", "PutItem", "BatchWriteItem", "DeleteItem"):
                        writes += 1
    delivered = stats.get("project_sales", {}).get("records_delivered", 0)
    print(f"read model: {writes} write calls for {records} events projected (traced), "
          f"{delivered} records delivered   ({writes / max(records, 1):.2f} writes per event, goal 1)")


def _walk(entity: dict) -> list[dict]:
    found = [entity]
    for child in entity.get("subsegments", []):
        found += _walk(child)
    return found


def _stream_throughput(e: dict, aws: dict, count: int) -> None:
    """`count` products written at once (BatchWriteItem, as an import does): the rate
    publish_product_events drains its stream at, against the rate they were written at."""
    ddb = boto3.client("dynamodb", **aws)
    table = e["tables"]["ProductsTable"]
    before = _stats(e).get("publish_product_events", {}).get("records_delivered", 0)
    now = datetime.now(timezone.utc).isoformat()
    started = time.perf_counter()
    for first in range(0, count, 25):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {
            "id": {"S": f"01BENCH{first + i:019d}"}, "owner": {"S": "bench-events-stream"},
            "catalog": {"S": "all"}, "name": {"S": f"Stream mug {first + i}"}, "description": {"S": ""},
            "price_cents": {"N": "100"}, "currency": {"S": "EUR"}, "stock": {"N": "50"}, "version": {"N": "1"},
            "created_at": {"S": now}, "updated_at": {"S": now}}}} for i in range(min(25, count - first))]})
    written = time.perf_counter() - started
    deadline = time.monotonic() + 600
    while _stats(e).get("publish_product_events", {}).get("records_delivered", 0) - before < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    drained = time.perf_counter() - started
    delivered = _stats(e).get("publish_product_events", {}).get("records_delivered", 0) - before
    print(f"stream: {count} product writes in {written:.1f} s ({count / written:.0f}/s, the baseline); "
          f"publish_product_events published {delivered} changes by {drained:.1f} s "
          f"({delivered / drained:.0f} events/s, {delivered / drained / (count / written):.2f}x the write rate)")


def _rebuild(e: dict, aws: dict, shop: Shop, count: int) -> None:
    """`count` confirmed orders seeded straight into the orders table (their OrderConfirmed
    events flow to the live model too), then the rebuild, against one Scan of the table."""
    ddb = boto3.client("dynamodb", **aws)
    table = e["tables"]["OrdersTable"]
    seller_sub = _sub_of(shop)
    product_id = shop.product("Rebuild mug", stock=10)
    now = datetime.now(timezone.utc).isoformat()
    live_before = shop.sales()["totals"]["orders"]
    for first in range(0, count, 25):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {
            "id": {"S": f"01REBUILD{first + i:017d}"}, "buyer": {"S": "bench-events-rebuild"},
            "product_id": {"S": product_id}, "quantity": {"N": "1"}, "status": {"S": "confirmed"},
            "amount_cents": {"N": "1200"}, "currency": {"S": "EUR"}, "payment_status": {"S": "captured"},
            "seller": {"S": seller_sub}, "product_name": {"S": "Rebuild mug"},
            "history": {"L": [{"M": {"status": {"S": s}, "at": {"S": now}}} for s in
                              ("queued", "reserved", "paid", "confirmed")]},
            "created_at": {"S": now}, "updated_at": {"S": now}}}} for i in range(min(25, count - first))]})
    deadline = time.monotonic() + 1200
    while shop.sales()["totals"]["orders"] < live_before + count and time.monotonic() < deadline:
        time.sleep(1)
    live = shop.sales()
    started = time.perf_counter()
    scanned = sum(page["Count"] for page in ddb.get_paginator("scan").paginate(TableName=table,
                                                                               ProjectionExpression="id"))
    scan_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rebuilt = requests.post(f"{e['trace_viewer']}/api/functions/rebuild_sales/invoke", json={}, timeout=1800).json()
    rebuild_seconds = time.perf_counter() - started
    again = shop.sales()
    same = {k: again[k] for k in ("totals", "products")} == {k: live[k] for k in ("totals", "products")}
    print(f"rebuild: {scanned} orders in the table; one Scan {scan_seconds:.1f} s (the baseline); "
          f"rebuild_sales {rebuild_seconds:.1f} s ({rebuild_seconds / scan_seconds:.1f}x): {rebuilt.get('result')}")
    print(f"  the rebuilt model equals the live one: {same}   (totals {again['totals']})")


def _sub_of(shop: Shop) -> str:
    import jwt

    return str(jwt.decode(shop.seller["Authorization"].split()[1], options={"verify_signature": False})["sub"])


if __name__ == "__main__":
    main()
