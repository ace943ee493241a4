"""The app's JSON log lines: Powertools' shape, written by the standard library."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import uuid

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.logs import append_keys, clear_keys, json_logger

TRACE = "Root=1-67000000-000000000000000000000001;Parent=0000000000000001;Sampled=1"


@pytest.fixture
def lines(monkeypatch):
    """A logger of its own writing to a buffer, and the lines it wrote so far (parsed)."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    stream = io.StringIO()
    logger = json_logger(f"storefront-{uuid.uuid4().hex[:8]}", stream=stream)
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    clear_keys()


def _failing() -> None:
    raise ValueError("no such size")


def test_a_line_has_powertools_keys_in_order_with_the_extra_keys_flattened_and_none_left_out(lines):
    logger, written = lines

    logger.info("image processed", extra={"image_id": "i-1", "bytes": 12, "format": None})

    (entry,) = written()
    assert list(entry) == ["level", "location", "message", "timestamp", "service", "image_id", "bytes",
                           "xray_trace_id"]
    assert entry["level"] == "INFO" and entry["message"] == "image processed"
    assert entry["location"].startswith("test_a_line_has_powertools_keys")
    assert entry["service"] == logger.name and entry["xray_trace_id"] == "1-67000000-000000000000000000000001"


def test_appended_keys_join_every_line_until_cleared(lines):
    logger, written = lines

    append_keys(request_id="r-1", trace_id=None)
    logger.info("request")
    clear_keys()
    logger.info("after")

    first, after = written()
    assert first["request_id"] == "r-1" and "trace_id" not in first
    assert "request_id" not in after


def test_appended_keys_stay_in_the_thread_that_appended_them(lines):
    logger, written = lines
    append_keys(request_id="main")

    other = threading.Thread(target=lambda: logger.info("from another request"))
    other.start()
    other.join()

    assert "request_id" not in written()[0]


def test_an_exception_is_logged_with_its_name_traceback_and_frames(lines):
    logger, written = lines

    try:
        _failing()
    except ValueError:
        logger.exception("record failed", extra={"message_id": "m-1"})

    (entry,) = written()
    assert entry["level"] == "ERROR" and entry["message_id"] == "m-1"
    assert entry["exception_name"] == "ValueError" and "no such size" in entry["exception"]
    assert entry["stack_trace"]["frames"][-1]["function"] == "_failing"


def test_a_line_is_the_one_powertools_logger_wrote_for_the_same_record(monkeypatch):
    # What CloudWatch queries and the local console read stays as it was, value for value.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    stream = io.StringIO()
    logger = json_logger(f"storefront-{uuid.uuid4().hex[:8]}", stream=stream)
    records: list[logging.LogRecord] = []
    logger.addFilter(lambda record: records.append(record) or True)
    try:
        _failing()
    except ValueError:
        logger.warning("upload ignored: %s", "no record", extra={"key": "uploads/ü", "size": 1.5},
                       exc_info=sys.exc_info())
    powertools = LambdaPowertoolsFormatter(utc=True, service=logger.name, sampling_rate=None)

    assert stream.getvalue().strip() == powertools.format(records[0])
