"""Bulk import through the local stack, against a naive serial importer, in one run.

    .venv/bin/python bench/import.py [--rows 10000] [--bad-every 40] [--rounds 3]

Uses the running stack (`make run`, or DEVSTACK_DIR's) when there is one, else starts one.

1. Pipeline: POST /imports, upload a CSV of `--rows` rows (every `--bad-every`-th row invalid)
   to the presigned form, watch GET /imports/{id} until the job ends. Time to final status runs
   from the end of the upload (the 204) to the job's `finished_at` (same machine, same clock), so
   the watching can be unhurried: polls cost the stack's CPU too.
2. DynamoDB write calls per chunk, read from the X-Ray traces of the import (every AWS call of a
   worker is a subsegment): BatchWriteItem, PutItem, UpdateItem, DeleteItem, TransactWriteItems.
3. Naive importer: the same file, one process, each row validated exactly as the workers do
   (csv + CreateProduct) and written with one PutItem, serially, to the same table.

Steps 1 and 3 alternate for `--rounds` rounds and the ratio is the median of the rounds' ratios:
this machine's speed drifts by a third within minutes (measured with a fixed CPU loop), more than
the difference being measured, so one pipeline run against one naive run proves little.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.domain.imports import FINAL_STATUSES, RowError, parse_row, records  # noqa: E402
from chalicelib.domain.ids import new_id  # noqa: E402
from bench.stack import local_stack  # noqa: E402
from devstack.tokens import issue_token  # noqa: E402

_POLL_S = 2.0  # each GET reads the job and its first 100 row errors, on the CPU the import runs on
_WRITES = {"BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"}
_BAD_ROWS = [
    "Broken,,twelve,EUR,1",           # price not an integer
    "Lamp,,1500,euro,2",              # currency
    ",no name,100,EUR,1",             # empty name
    "Chair,,100,EUR,-3",              # negative stock
    "Desk,,100,EUR",                  # a field short
]


def make_csv(rows: int, bad_every: int) -> tuple[bytes, int]:
    """A CSV of `rows` rows; every `bad_every`-th is invalid. Returns (bytes, bad rows)."""
    lines = ["name,description,price_cents,currency,stock"]
    bad = 0
    for i in range(1, rows + 1):
        if bad_every and i % bad_every == 0:
            lines.append(_BAD_ROWS[bad % len(_BAD_ROWS)])
            bad += 1
        else:
            lines.append(f'Product {i},"Bench item {i}, imported in bulk",{100 + i % 9000},EUR,{i % 50}')
    return ("\n".join(lines) + "\n").encode(), bad


class Stack:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.e = endpoints
        self.api = endpoints["api"]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.e["aws_endpoint"], region_name=self.e["region"],
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def token(self, username: str) -> tuple[str, str]:
        import jwt

        token = issue_token(self.client("cognito-idp"), self.e["user_pool_id"],
                            self.e["user_pool_client_id"], username)
        return token, jwt.decode(token, options={"verify_signature": False})["sub"]


def run_pipeline(stack: Stack, body: bytes, token: str) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    created = requests.post(f"{stack.api}/imports", headers=auth, timeout=30)
    created.raise_for_status()
    job_id, upload = created.json()["job_id"], created.json()["upload"]
    started = time.perf_counter()
    uploaded = requests.post(upload["url"], data=upload["fields"],
                             files={"file": ("bench.csv", body, "text/csv")}, timeout=120)
    uploaded.raise_for_status()
    upload_s = time.perf_counter() - started
    uploaded_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    seen: list[str] = []
    while True:
        job = requests.get(f"{stack.api}/imports/{job_id}", headers=auth, timeout=30).json()
        line = f"{job['status']:>21}  chunks {job['chunks_done']}/{job['chunks_total']}  " \
               f"rows {job['rows_imported'] + job['rows_failed']}/{job['rows_total']}"
        if not seen or seen[-1] != line:
            seen.append(line)
            print(f"  {time.perf_counter() - t0:6.2f} s  {line}", flush=True)
        if job["status"] in FINAL_STATUSES:
            break
        if time.perf_counter() - t0 > 600:
            sys.exit("the import did not finish within 10 minutes")
        time.sleep(_POLL_S)
    finished_at = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
    return {"job": job, "job_id": job_id, "upload_s": upload_s,
            "final_s": (finished_at - uploaded_at).total_seconds()}


def _walk(entity: dict[str, Any], root: str, owner: dict[str, str], out: list[tuple[str, dict]]) -> None:
    owner[entity["id"]] = root
    out.append((root, entity))
    for child in entity.get("subsegments", []):
        _walk(child, root, owner, out)


def write_calls_per_chunk(stack: Stack, job_id: str, chunks: int, since: datetime) -> list[int]:
    """DynamoDB write calls of each import_chunk invocation of `job_id`, from X-Ray."""
    xray = stack.client("xray")
    deadline = time.monotonic() + 60
    while True:
        documents: list[dict[str, Any]] = []
        ids: list[str] = []
        kwargs: dict[str, Any] = {"StartTime": since, "EndTime": datetime.now(timezone.utc) + timedelta(minutes=1)}
        while True:
            page = xray.get_trace_summaries(**kwargs)
            ids.extend(s["Id"] for s in page.get("TraceSummaries", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        for start in range(0, len(ids), 5):
            for trace in xray.batch_get_traces(TraceIds=ids[start:start + 5]).get("Traces", []):
                documents.extend(json.loads(s["Document"]) for s in trace.get("Segments", []))
        # Segments hold their subsegments, except those the SDK streamed apart (a segment with
        # many subsegments): those name their parent, so each entity is traced to its segment.
        owner: dict[str, str] = {}
        entities: list[tuple[str, dict]] = []
        streamed = []
        for doc in documents:
            if doc.get("type") == "subsegment":
                streamed.append(doc)
            else:
                _walk(doc, doc["id"], owner, entities)
        for _ in range(10):
            left = []
            for doc in streamed:
                root = owner.get(doc.get("parent_id", ""))
                if root is None:
                    left.append(doc)
                else:
                    _walk(doc, root, owner, entities)
            streamed = left
        of_job = {root for root, e in entities if e.get("annotations", {}).get("job_id") == job_id
                  and "import_chunk" in json.dumps(e.get("name"))}
        calls: Counter[str] = Counter()
        for root, e in entities:
            operation = e.get("aws", {}).get("operation")
            if root in of_job and str(e.get("name", "")).lower() == "dynamodb" and operation in _WRITES:
                calls[root] += 1
        if len(of_job) >= chunks or time.monotonic() > deadline:
            return [calls[root] for root in of_job]
        time.sleep(1)


def run_naive(stack: Stack, body: bytes, owner: str) -> tuple[float, int, int]:
    """One PutItem per valid row, serially; (seconds, imported, failed)."""
    from chalicelib.adapters.products_table import bind_products_table
    from chalicelib.domain.products import new_product

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    table = stack.e["tables"]["ProductsTable"]
    model = bind_products_table(table=table, region=stack.e["region"])
    dynamodb = stack.client("dynamodb")
    imported = failed = 0
    started = time.perf_counter()
    for record in records([body]):
        if record.row == 1 or record.blank:
            continue
        row = parse_row(record)
        if isinstance(row, RowError):
            failed += 1
            continue
        product = new_product(row, product_id=new_id(), owner=owner, now=datetime.now(timezone.utc))
        item = model(product.id, owner=owner, name=product.name, description=product.description,
                     price_cents=product.price_cents, currency=product.currency, stock=product.stock,
                     version=1, created_at=product.created_at, updated_at=product.updated_at)
        dynamodb.put_item(TableName=table, Item=item.serialize(),
                          ConditionExpression="attribute_not_exists(id)")
        imported += 1
    return time.perf_counter() - started, imported, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--bad-every", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="pipeline and naive runs, alternating")
    parser.add_argument("--skip-naive", action="store_true", help="only the pipeline")
    args = parser.parse_args()
    with local_stack() as endpoints:
        return bench(Stack(endpoints), args)


def bench(stack: Stack, args: argparse.Namespace) -> int:
    body, bad = make_csv(args.rows, args.bad_every)
    print(f"CSV: {args.rows:,} rows ({bad} invalid), {len(body) / 1024:.0f} KiB; stack at {stack.api}")
    rounds: list[tuple[float, float | None]] = []
    all_ok = True
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}, pipeline:")
        token, sub = stack.token(f"bench-{uuid.uuid4().hex[:8]}")
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        result = run_pipeline(stack, body, token)
        job = result["job"]
        ok = (job["rows_total"] == args.rows and job["rows_failed"] == bad
              and job["rows_imported"] == args.rows - bad)
        all_ok = all_ok and ok
        print(f"  final status {job['status']}: {job['rows_imported']:,} imported, {job['rows_failed']} failed"
              f" ({'as expected' if ok else 'NOT AS EXPECTED'}), {job['chunks_total']} chunks")
        print(f"  upload {result['upload_s']:.2f} s; time to final status {result['final_s']:.2f} s; "
              f"{args.rows / result['final_s']:,.0f} rows/s")
        if number == 1:
            calls = write_calls_per_chunk(stack, result["job_id"], job["chunks_total"], since)
            if calls:
                print(f"  DynamoDB write calls per chunk (X-Ray, {len(calls)} of {job['chunks_total']} chunks seen): "
                      f"max {max(calls)}, median {statistics.median(calls):g} (goal <= 21 per 500 rows)")
            else:
                print("  DynamoDB write calls per chunk: no worker traces found (is tracing on?)")
        if args.skip_naive:
            rounds.append((result["final_s"], None))
            continue
        print(f"round {number} of {args.rounds}, naive serial importer (one PutItem per row, one process):", flush=True)
        naive_s, imported, failed = run_naive(stack, body, f"naive-{sub}")
        print(f"  {imported:,} imported, {failed} failed in {naive_s:.2f} s; {args.rows / naive_s:,.0f} rows/s; "
              f"this round: pipeline {naive_s / result['final_s']:.1f}x faster")
        rounds.append((result["final_s"], naive_s))
    pipeline = [p for p, _ in rounds]
    print(f"pipeline: median {statistics.median(pipeline):.2f} s to final status over {len(rounds)} round(s) "
          f"({', '.join(f'{p:.2f}' for p in pipeline)}); {args.rows / statistics.median(pipeline):,.0f} rows/s")
    if not args.skip_naive:
        naive = [n for _, n in rounds if n is not None]
        ratios = [n / p for p, n in rounds if n is not None]
        print(f"naive: median {statistics.median(naive):.2f} s ({', '.join(f'{n:.2f}' for n in naive)})")
        print(f"pipeline vs naive: {statistics.median(ratios):.1f}x faster, median of the rounds' ratios "
              f"({', '.join(f'{r:.1f}' for r in ratios)}) (goal >= 8x)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
