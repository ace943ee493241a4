"""Each function's Handler, loaded as Lambda loads it (a fresh interpreter importing only that),
runs with the app's middleware: request ids, log context, a span per invocation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.package import functions

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]

# What Lambda's Python runtime does with "module.attr", then which middleware the handler will run.
_PROBE = """
import importlib, json, sys
module, _, attr = sys.argv[1].rpartition(".")
handler = getattr(importlib.import_module(module), attr)
if attr == "app":
    names = [f.__name__ for f, kind in handler.middleware_handlers if kind in ("http", "all")]
else:
    names = [f.__name__ for f in handler.middleware_handlers]
print(json.dumps(names))
"""


def _middleware_of(handler: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", _PROBE, handler], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=60)
    return list(json.loads(result.stdout))


def test_every_function_loads_with_its_middleware(template: dict[str, Any]) -> None:
    for name, logical_id in functions(template).items():
        handler = template["Resources"][logical_id]["Properties"]["Handler"]
        expected = ["http_middleware"] if name == "api_handler" else ["event_middleware"]

        assert _middleware_of(handler) == expected, f"{name}: {handler}"


def test_a_blueprints_module_loaded_alone_would_have_no_middleware() -> None:
    assert _middleware_of("chalicelib.entrypoints.order_events.consume_orders") == []
