"""An outage longer than the queue's retries: the upload or the chunk reaches its DLQ, whose
consumer ends the job `failed` with a reason (before, the job showed `pending` or `running` for
ever). Poison in those DLQs is logged whole for a person, and dropped. A domain event the sales
projection never counts is logged whole by its DLQ's consumer, and the rebuild restores it."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.app.helpers import body_of
from tests.integration.app.imports_helpers import TopicTap, upload
from tests.integration.faults.injection import Faults, app_clients
from tests.integration.faults.delivery import _context
from tests.integration.faults.scenarios import GOOD_ROWS, HEADER, POISON, Sales, csv_of, dead_letters, sales_of

pytestmark = pytest.mark.timeout(120)


def assert_logged(caplog: pytest.LogCaptureFixture, body: str) -> None:
    (line,) = [r for r in caplog.records if r.getMessage() == "unreadable message in a dead-letter queue, dropped"]
    assert getattr(line, "body") == body


def test_a_chunk_that_never_imports_fails_its_job_and_poison_in_the_dlq_is_logged(world, app_logs):
    owner = world.new_user()
    job = body_of(world.api.post("/imports", headers=owner.headers()))
    tap = TopicTap(world.client("sns"), world.client("sqs"), world.env["IMPORT_COMPLETED_TOPIC"],
                   f"completed-{uuid.uuid4().hex[:8]}")
    assert upload(job["upload"], csv_of(GOOD_ROWS, {})).status_code == 204  # 10 rows: chunks of 4, 4, 2
    world.delivery.dead_letters("import_chunk").send(POISON)
    faults = Faults("import_chunk")
    # Every read of the second and third chunks fails (the first starts right after the header).
    faults.fail_first("s3", {"GetObject"}, 1000, "InternalError", 500,
                      when=lambda params: not params["headers"].get("Range", "").startswith(f"bytes={len(HEADER)}-"))

    with faults.installed(app_clients()):
        world.delivery.drain(["dispatch_import", "import_chunk"])
    held = dead_letters(world, "import_chunk")
    assert len(held) == 3 and held.count(POISON) == 1  # the poison and the two chunks
    world.delivery.deliver_each_once("import_chunk_dead_letter")

    state = body_of(world.api.get(f"/imports/{job['job_id']}", headers=owner.headers()))
    assert (state["status"], state["rows_imported"], state["chunks_done"], state["chunks_total"]) == ("failed", 4, 1, 3)
    (error,) = state["errors"]
    assert error["row"] in (6, 10) and "could not be imported after repeated attempts" in error["message"]
    (announced,) = [m for m in tap.messages(wait=1) if m["job_id"] == job["job_id"]]
    assert (announced["status"], announced["rows_imported"]) == ("failed", 4)
    assert dead_letters(world, "import_chunk") == []
    assert_logged(app_logs, POISON)


def test_an_upload_that_never_dispatches_fails_its_job_and_poison_in_the_dlq_is_logged(world, app_logs):
    owner = world.new_user()
    job = body_of(world.api.post("/imports", headers=owner.headers()))
    assert upload(job["upload"], csv_of(GOOD_ROWS, {})).status_code == 204
    world.delivery.dead_letters("dispatch_import").send(POISON)
    faults = Faults("dispatch_import")
    faults.fail_first("s3", {"HeadObject"}, 1000, "SlowDown", 503)

    with faults.installed(app_clients()):
        world.delivery.drain(["dispatch_import"])
    held = dead_letters(world, "dispatch_import")
    assert len(held) == 2 and POISON in held  # the poison and the upload's notification
    world.delivery.deliver_each_once("dispatch_import_dead_letter")

    state = body_of(world.api.get(f"/imports/{job['job_id']}", headers=owner.headers()))
    assert (state["status"], state["rows_imported"]) == ("failed", 0)
    assert state["errors"][0]["message"].startswith("the uploaded file could not be read after repeated attempts")
    assert dead_letters(world, "dispatch_import") == []
    assert_logged(app_logs, POISON)


def test_sales_events_never_counted_are_logged_by_the_dlq_consumer_and_the_rebuild_counts_them(world, app_logs):
    scenario = Sales("project_sales")  # 6 orders of two products confirmed, one declined, one cancelled after
    scenario.arrange(world, "sales table unavailable")
    faults = Faults("project_sales")
    faults.fail_first("dynamodb", {"TransactWriteItems", "UpdateItem"}, 10_000, "InternalServerError", 500)

    with faults.installed(app_clients()):
        world.delivery.drain(["project_sales"])
    held = dead_letters(world, "project_sales")
    events = [body for body in held if body != POISON]
    assert POISON in held and len(events) >= 6  # every event: 5 confirmed, 1 cancelled, the names
    seller = scenario.state["seller"]
    assert sales_of(world, seller)["totals"] == {"orders": 0, "units": 0, "revenue_cents": 0}

    world.delivery.deliver_each_once("sales_dead_letter")
    assert dead_letters(world, "project_sales") == []
    logged = [r for r in app_logs.records if r.getMessage() == (
        "event failed every delivery: the sales read model misses it; make rebuild-sales restores it")]
    assert sorted(getattr(r, "body") for r in logged) == sorted(held)  # each one whole, the poison too

    rebuilt = world.api_app.handler_map["rebuild_sales"]({}, _context("rebuild_sales"))
    assert rebuilt["orders"] >= 5  # this test's, and what earlier tests left in the shared tables
    scenario.check_sales(world)
