"""schemathesis, from PyPI, against the running local stack: every operation of /openapi.json, with
positive and negative data, then stateful scenarios along the document's links (create -> read ->
change -> delete, order -> read, import -> watch). Any 5xx, or any answer the document does not
allow (status, content type, headers, body schema), fails the run.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
import sys
from pathlib import Path

import pytest
import requests

from chalicelib.entrypoints.openapi import document

MIN_REQUESTS = 2000
CONFIG = Path(__file__).with_name("schemathesis.toml")  # the checks and how many examples

pytestmark = pytest.mark.timeout(900)


def _schemathesis() -> str:
    return str(Path(sys.executable).with_name("schemathesis"))


def test_the_stack_serves_the_document_the_models_generate(stack):
    response = requests.get(f"{stack.endpoints['api']}/openapi.json", timeout=30)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(document()))


def test_schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_allow(
        stack, token, report_dir, capsys):
    har = report_dir / "requests.har"
    done = subprocess.run(
        [_schemathesis(), "--config-file", str(CONFIG), "run", f"{stack.endpoints['api']}/openapi.json",
         "--header", f"Authorization: Bearer {token}",
         "--phases", "examples,coverage,fuzzing,stateful",
         "--mode", "all",
         "--request-timeout", "30",
         "--report", "har", "--report-har-path", str(har),
         "--no-color"],
        cwd=report_dir, capture_output=True, text=True, timeout=850)  # its cache stays out of the tree
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses = Counter(entry["response"]["status"] for entry in entries)
    with capsys.disabled():
        print(f"\nschemathesis sent {len(entries)} requests; answers by status: {dict(sorted(statuses.items()))}")

    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    assert len(entries) >= MIN_REQUESTS
    assert not [status for status in statuses if status >= 500]
