"""The order saga under a burst: 500 orders from 16 client threads for a product with stock 300,
paid with a mix of API.md's test tokens.

Against the running local stack (or one started for the run). Prints, from the stack's own
records (the orders table, the payment stand-in, Step Functions' histories, X-Ray):
- that every order ended, and how (confirmed, rejected, payment_failed by reason);
- the invariants: confirmed units + final stock = initial stock; captures = confirmed orders;
  payment calls per confirmed order (goal 2: authorize and capture);
- the time from intake to the order's ending, p50 and p99, against the time from intake to the
  stock's reservation measured in the same run (the queue-levelling part alone): the ratio is
  what the saga adds;
- the cost of one confirmed order on AWS (state transitions, Lambda GB-s and requests, one
  e-mail) from one warm order's measured step durations.

    .venv/bin/python bench/saga.py [--orders 500] [--threads 16] [--stock 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.load_levelling import percentile  # noqa: E402
from bench.stack import local_stack, token  # noqa: E402

# The mix of cards: mostly good ones, as a shop sees it, and each failure kind.
MIX = (["pm_card_visa"] * 7 + ["pm_card_chargeDeclined", "pm_card_chargeDeclinedInsufficientFunds",
                                "pm_card_unavailable"])
SETTLED = {"confirmed", "rejected", "payment_failed", "cancelled", "failed"}
# AWS list prices, us-east-1, arm64 (2026): Step Functions Standard, Lambda, SES.
PER_TRANSITION = 0.025 / 1000
PER_GB_SECOND = 0.0000133334
PER_REQUEST = 0.20 / 1_000_000
PER_EMAIL = 0.10 / 1000
STEP_MEMORY_GB = 0.5  # the steps' memory (.chalice/config.json: lambda_memory_size 512)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--stock", type=int, default=300)
    args = parser.parse_args()

    with local_stack() as e:
        api = e["api"]
        aws = dict(endpoint_url=e["aws_endpoint"], region_name=e["region"],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
        buyer = token(e, "bench-saga-buyer")
        bearer = {"Authorization": f"Bearer {buyer}"}
        product = requests.post(f"{api}/products", headers=bearer, timeout=30, json={
            "name": "Saga mug", "price_cents": 1200, "currency": "EUR", "stock": args.stock}).json()

        placed: list[str] = []
        refused: list[Any] = []
        lock = threading.Lock()
        per_thread = [args.orders // args.threads + (i < args.orders % args.threads) for i in range(args.threads)]

        def client(index: int, count: int) -> None:
            with requests.Session() as session:
                for n in range(count):
                    card = MIX[(index + n * args.threads) % len(MIX)]
                    try:
                        r = session.post(f"{api}/orders", headers=bearer, timeout=30, json={
                            "product_id": product["id"], "quantity": 1, "payment_method": card})
                    except requests.RequestException as exc:
                        with lock:
                            refused.append(type(exc).__name__)
                        continue
                    with lock:
                        (placed.append(r.json()["order_id"]) if r.status_code == 202 else refused.append(r.status_code))

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i, n)) for i, n in enumerate(per_thread)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        burst_seconds = time.perf_counter() - started

        orders = _wait_until_settled(api, bearer, set(placed), deadline=time.monotonic() + 900)
        all_settled_seconds = time.perf_counter() - started
        final_stock = requests.get(f"{api}/products/{product['id']}", timeout=30).json()["stock"]
        outcomes = Counter((o["status"], o.get("reason")) for o in orders.values())
        confirmed = {i for i, o in orders.items() if o["status"] == "confirmed"}
        intents = _intents(e["payments"], set(placed))
        captured = {i for i, intent in intents.items() if intent["status"] == "succeeded"}
        calls = requests.get(f"{e['payments']}/_devstack/calls", timeout=30).json()["orders"]
        to_reserved, to_ending = [], []
        for o in orders.values():
            at = {h["status"]: datetime.fromisoformat(h["at"]) for h in o["history"]}
            if "reserved" in at:
                to_reserved.append((at["reserved"] - at["queued"]).total_seconds())
            to_ending.append((datetime.fromisoformat(o["history"][-1]["at"]) - at["queued"]).total_seconds())

        print(f"burst: {args.orders} orders from {args.threads} threads in {burst_seconds:.1f} s, stock {args.stock}, "
              f"cards {dict(Counter(MIX))} in turn")
        print(f"  accepted (202)                 {len(placed)}/{args.orders}"
              + (f"   refused: {dict(Counter(refused))}" if refused else ""))
        print(f"  every order ended              {len(orders) == len(placed)}   ({len(orders)} of {len(placed)}, "
              f"all after {all_settled_seconds:.1f} s)")
        for (status, reason), count in sorted(outcomes.items(), key=lambda kv: -kv[1]):
            print(f"    {status:<15} {reason or '':<31} {count}")
        print(f"  confirmed units + final stock  {len(confirmed)} + {final_stock} = {len(confirmed) + final_stock}"
              f"   (goal {args.stock})")
        print(f"  captures / confirmed orders    {len(captured)} / {len(confirmed)}   (goal equal, same orders: "
              f"{captured == confirmed})")
        per_confirmed = [calls[i]["total"] for i in confirmed if i in calls]
        print(f"  payment calls per confirmed    mean {statistics.mean(per_confirmed):.2f}, max {max(per_confirmed)}"
              f"   (goal 2: authorize and capture)")
        print(f"  intake -> reserved  p50 / p99  {statistics.median(to_reserved):.2f} / "
              f"{percentile(to_reserved, 0.99):.2f} s   (the levelling alone: the baseline of this run)")
        print(f"  intake -> ending    p50 / p99  {statistics.median(to_ending):.2f} / {percentile(to_ending, 0.99):.2f} s"
              f"   ({statistics.median(to_ending) / statistics.median(to_reserved):.1f}x / "
              f"{percentile(to_ending, 0.99) / percentile(to_reserved, 0.99):.1f}x the baseline)")
        _cost_of_one_confirmed_order(e, bearer, product["id"], aws)


def _wait_until_settled(api: str, bearer: dict[str, str], wanted: set[str], *, deadline: float) -> dict[str, dict]:
    """Every wanted order once settled, read through GET /orders (pages of 100, one query each)."""
    while True:
        found: dict[str, dict] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = requests.get(f"{api}/orders", headers=bearer, params=params, timeout=30).json()
            found.update({o["order_id"]: o for o in page["items"] if o["order_id"] in wanted})
            cursor = page["next_cursor"]
            if not cursor:
                break
        if all(o["status"] in SETTLED for o in found.values()) and len(found) == len(wanted):
            return found
        if time.monotonic() > deadline:
            return {i: o for i, o in found.items() if o["status"] in SETTLED}
        time.sleep(2.0)


def _intents(payments: str, order_ids: set[str]) -> dict[str, dict]:
    from devstack.payments import LOCAL_API_KEY

    intents: dict[str, dict] = {}
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["starting_after"] = after
        page = requests.get(f"{payments}/v1/payment_intents", params=params, timeout=30,
                            headers={"Authorization": f"Bearer {LOCAL_API_KEY}"}).json()
        intents.update({i["metadata"]["order_id"]: i for i in page["data"] if i["metadata"].get("order_id") in order_ids})
        if not page["has_more"]:
            return intents
        after = page["data"][-1]["id"]


def _cost_of_one_confirmed_order(e: dict, bearer: dict[str, str], product_id: str, aws: dict) -> None:
    """One more order, alone and warm: its execution's transitions, its steps' measured durations."""
    api = e["api"]
    since = time.time()
    order_id = requests.post(f"{api}/orders", headers=bearer, timeout=30, json={
        "product_id": product_id, "quantity": 1, "payment_method": "pm_card_visa"}).json()["order_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if requests.get(f"{api}/orders/{order_id}", headers=bearer, timeout=30).json()["status"] in SETTLED:
            break
        time.sleep(0.3)
    sfn = boto3.client("stepfunctions", **aws)
    arn = e["state_machines"]["OrderSagaStateMachine"].replace(":stateMachine:", ":execution:") + f":{order_id}"
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    transitions = sum(1 for event in history if event["type"].endswith("StateEntered"))
    invocations = sum(1 for event in history if event["type"] == "TaskScheduled")
    durations = _step_durations(boto3.client("xray", **aws), since)
    gb_seconds = sum(durations) * STEP_MEMORY_GB
    cost = transitions * PER_TRANSITION + gb_seconds * PER_GB_SECOND + invocations * PER_REQUEST + PER_EMAIL
    print(f"  one confirmed order on AWS     {transitions} state transitions, {invocations} step invocations "
          f"({', '.join(f'{d * 1000:.0f}' for d in durations)} ms measured here, warm), 1 e-mail")
    print(f"    = ${transitions * PER_TRANSITION * 1e6:,.0f} transitions + ${gb_seconds * PER_GB_SECOND * 1e6:,.2f} "
          f"GB-s + ${invocations * PER_REQUEST * 1e6:,.2f} requests + ${PER_EMAIL * 1e6:,.0f} e-mail"
          f" = ${cost * 1e6:,.0f} per million confirmed orders (the saga's part; intake and consumer apart)")


def _step_durations(xray: Any, since: float) -> list[float]:
    """The saga's step invocations since `since` (epoch seconds), as their function segments in
    X-Ray say; the order runs alone, so they are its steps."""
    from datetime import timedelta, timezone

    start = datetime.fromtimestamp(since, timezone.utc) - timedelta(seconds=5)
    deadline = time.monotonic() + 30
    durations: list[float] = []
    while time.monotonic() < deadline:
        ids = [s["Id"] for page in xray.get_paginator("get_trace_summaries").paginate(
            StartTime=start, EndTime=datetime.now(timezone.utc)) for s in page["TraceSummaries"]]
        durations = []
        for first in range(0, len(ids), 5):
            for trace in xray.batch_get_traces(TraceIds=ids[first:first + 5])["Traces"]:
                for segment in trace["Segments"]:
                    doc = json.loads(segment["Document"])
                    if ("order_saga_" in doc["name"] and doc.get("origin") == "AWS::Lambda::Function"
                            and doc["start_time"] >= since):
                        durations.append(doc["end_time"] - doc["start_time"])
        if len(durations) >= 4:
            return durations
        time.sleep(1.0)
    return durations


if __name__ == "__main__":
    main()
