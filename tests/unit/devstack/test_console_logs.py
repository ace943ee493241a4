"""What make run prints of the app's logs: one short line per request, or every JSON line."""

from __future__ import annotations

import json
import uuid

import logging

import pytest

from chalicelib.logs import SERVICE_NAME, append_keys, clear_keys, json_logger
from devstack.console_logs import LOGS_VARIABLE, configure_app_logs


def _app_logger(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    """The app's logger, as app.py's import makes it (a service of its own per test).
    Made inside the test: its handler keeps the sys.stdout of the moment, which capsys replaces."""
    service = f"storefront-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(SERVICE_NAME, service)
    return json_logger(service)


def _log_a_request_and_more(logger: logging.Logger) -> None:
    append_keys(request_id="r-1")
    logger.info("request", extra={"route": "GET /products", "status": 200, "duration_ms": 12.3})
    logger.info("order confirmed", extra={"order_id": "o-1"})
    logger.warning("record failed", extra={"message_id": "m-1"})
    clear_keys()


def test_by_default_a_request_is_one_short_line_and_only_problems_join_it(capsys, monkeypatch):
    app_logger = _app_logger(monkeypatch)
    monkeypatch.delenv(LOGS_VARIABLE, raising=False)
    configure_app_logs()

    _log_a_request_and_more(app_logger)

    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["GET /products 200 12.3 ms",
                                                         "WARNING record failed message_id=m-1"]


def test_with_devstack_logs_json_every_line_is_the_apps_json(capsys, monkeypatch):
    app_logger = _app_logger(monkeypatch)
    monkeypatch.setenv(LOGS_VARIABLE, "json")
    configure_app_logs()

    _log_a_request_and_more(app_logger)

    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["message"] for e in entries] == ["request", "order confirmed", "record failed"]
    assert entries[0]["request_id"] == "r-1"
