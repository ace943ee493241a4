"""Imports and the cleanup on the running local stack, as a user meets them: a CSV posted through
the presigned form, GET /imports/{id} counting up to its final status, the import followed in
the traces, then `make cleanup NOW=...` removing what it should and nothing else."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
import requests

from tests.e2e.conftest import ROOT
from tests.support.xray import segment_documents

pytestmark = pytest.mark.timeout(240)

FINAL = {"completed", "completed_with_errors", "failed"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _csv(rows: int, bad_every: int) -> bytes:
    lines = ["name,description,price_cents,currency,stock"]
    for i in range(1, rows + 1):
        good = f'Item {i},"Imported, row {i + 1}",{i},EUR,{i % 9}'
        lines.append(f"Bad {i},,lots,EUR,1" if i % bad_every == 0 else good)
    return ("\n".join(lines) + "\n").encode()


def _import(stack: Any, token: str, body: bytes) -> tuple[str, list[dict[str, Any]]]:
    """POST /imports, upload through the form, then watch the job until it ends: (id, what was seen)."""
    api = stack.endpoints["api"]
    created = requests.post(f"{api}/imports", headers=_auth(token), timeout=10)
    assert created.status_code == 201, created.text
    job_id, upload = created.json()["job_id"], created.json()["upload"]
    assert upload["url"].startswith(stack.endpoints["aws_endpoint"] + "/")
    sent = requests.post(upload["url"], data=upload["fields"], files={"file": ("products.csv", body, "text/csv")},
                         timeout=30)
    assert sent.status_code == 204, sent.text
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = requests.get(f"{api}/imports/{job_id}", headers=_auth(token), timeout=10).json()
        seen.append(job)
        if job["status"] in FINAL:
            return job_id, seen
        time.sleep(0.2)
    raise AssertionError(f"the import did not end: {seen[-1]}")


def _fire_cleanup(stack: Any, at: datetime) -> dict[str, Any]:
    """`make cleanup NOW=<at>`, as a user types it in a second terminal."""
    done = subprocess.run(["make", "-s", "cleanup", f"NOW={at.strftime('%Y-%m-%dT%H:%M:%SZ')}"], cwd=ROOT,
                          env=stack.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)["result"]


def _segments(stack: Any, since: datetime) -> list[dict[str, Any]]:
    import boto3

    xray = boto3.client("xray", endpoint_url=stack.endpoints["aws_endpoint"], region_name=stack.endpoints["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    return segment_documents(xray, since)


def _keys(stack: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in stack.aws("s3api", "list-objects-v2", "--bucket", bucket).get("Contents", [])}


def _annotated(entity: dict[str, Any], job_id: str) -> bool:
    if entity.get("annotations", {}).get("job_id") == job_id:
        return True
    return any(_annotated(child, job_id) for child in entity.get("subsegments", []))


def test_a_csv_is_imported_through_the_running_stack_and_followed_in_the_traces(stack):
    token = stack.token(f"importer-{uuid.uuid4().hex[:8]}")
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    since = datetime.now(timezone.utc) - timedelta(seconds=5)

    job_id, seen = _import(stack, token, _csv(1200, bad_every=100))

    job = seen[-1]
    assert {k: job[k] for k in ("status", "rows_total", "rows_imported", "rows_failed", "chunks_total",
                                "chunks_done")} == {
        "status": "completed_with_errors", "rows_total": 1200, "rows_imported": 1188, "rows_failed": 12,
        "chunks_total": 3, "chunks_done": 3}
    assert job["errors"][0] == {"row": 101, "message": "price_cents: must be an integer"}
    assert [e["row"] for e in job["errors"]] == [101 + 100 * i for i in range(12)]
    done_counts = [j["chunks_done"] for j in seen]
    assert done_counts == sorted(done_counts)  # it only ever counts up
    listed = requests.get(f"{stack.endpoints['api']}/products", params={"owner": sub, "limit": 1}, timeout=10).json()
    newest = listed["items"][0]
    assert (newest["name"], newest["owner"]) == ("Item 1199", sub)  # the last valid row comes first

    # One import, followed end to end: the dispatcher and every worker carry job_id, and each
    # worker's trace is linked to the dispatcher's (the header crossed SNS in a message attribute).
    deadline = time.monotonic() + 30
    while True:
        documents = [d for d in _segments(stack, since) if _annotated(d, job_id)]
        dispatchers = [d for d in documents if d["name"].endswith("dispatch_import")]
        workers = [d for d in documents if d["name"].endswith("import_chunk")]
        if (dispatchers and len(workers) >= 3) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(dispatchers) == 1 and len(workers) == 3
    assert {link["trace_id"] for w in workers for link in w["links"]} == {dispatchers[0]["trace_id"]}


def test_cleanup_removes_what_it_should_and_nothing_else(stack):
    token = stack.token(f"cleaner-{uuid.uuid4().hex[:8]}")
    api = stack.endpoints["api"]
    job_id, _ = _import(stack, token, _csv(3, bad_every=100))
    lamp = {"name": "Lamp", "price_cents": 4500, "currency": "EUR", "stock": 2}
    product = requests.post(f"{api}/products", headers={**_auth(token), "Idempotency-Key": uuid.uuid4().hex},
                            json=lamp, timeout=10).json()
    ticket = requests.post(f"{api}/products/{product['id']}/images", headers=_auth(token), timeout=10,
                           json={"content_type": "image/png", "size_bytes": 1000}).json()  # never uploaded
    uploads = stack.endpoints["buckets"]["uploads"]
    stray = f"uploads/someone/{product['id']}/01KAZZ3M1C5WB1Q8S6Y7P0R2T4"
    stack.aws("s3api", "put-object", "--bucket", uploads, "--key", stray)
    now = datetime.now(timezone.utc)

    soon = _fire_cleanup(stack, now + timedelta(minutes=30))
    assert soon["complete"] and soon["images_failed"] == 0
    assert stray in _keys(stack, uploads)

    later = _fire_cleanup(stack, now + timedelta(days=2))
    image = requests.get(f"{api}/products/{product['id']}", timeout=10).json()["images"][0]
    assert (image["id"], image["status"]) == (ticket["image_id"], "failed")
    assert stray not in _keys(stack, uploads)
    assert later["idempotency_records_deleted"] >= 1 and later["upload_objects_deleted"] >= 1
    assert requests.get(f"{api}/imports/{job_id}", headers=_auth(token), timeout=10).status_code == 200

    _fire_cleanup(stack, now + timedelta(days=8))
    assert requests.get(f"{api}/imports/{job_id}", headers=_auth(token), timeout=10).status_code == 404
    # Products stay, whoever made them.
    assert requests.get(f"{api}/products/{product['id']}", timeout=10).status_code == 200
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    mine = requests.get(f"{api}/products", params={"owner": sub}, timeout=10).json()["items"]
    assert sorted(p["name"] for p in mine) == ["Item 1", "Item 2", "Item 3", "Lamp"]
