"""An outage longer than the queue's retries: the upload or the chunk reaches its DLQ, whose
consumer ends the job `failed` with a reason (before, the job showed `pending` or `running` for
ever). Poison in those DLQs is logged whole for a person, and dropped."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.app.helpers import body_of
from tests.integration.app.imports_helpers import TopicTap, upload
from tests.integration.faults.injection import Faults, app_clients
from tests.integration.faults.scenarios import GOOD_ROWS, HEADER, POISON, csv_of, dead_letters

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
