"""ImportService, bootstrapped over in-memory fakes: jobs, the dispatcher's fan-out, the workers,
the fan-in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.bootstrap import bootstrap
from chalicelib.domain.errors import DependencyUnavailable, Forbidden, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.imports import MAX_FILE_BYTES, product_id_for, upload_key
from tests.unit.fakes import FakeClock, InMemoryTracer, SequentialIds, fake_clients, fake_settings

ALICE = Caller(sub="alice-sub", username="alice")
BOB = Caller(sub="bob-sub", username="bob")
HEADER = b"name,description,price_cents,currency,stock\n"


def csv(*rows: str) -> bytes:
    return HEADER + "".join(f"{r}\n" for r in rows).encode()


def good(n: int, start: int = 0) -> list[str]:
    return [f"Item {i},,{100 + i},EUR,{i % 7}" for i in range(start, start + n)]


class World:
    def __init__(self, chunk_rows: int = 3) -> None:
        self.clock = FakeClock()
        clients = fake_clients(clock=self.clock)
        self.jobs, self.files = clients.import_jobs, clients.import_files
        self.writer, self.topics = clients.import_writer, clients.import_topics
        settings = fake_settings(import_retention_days=7, import_chunk_rows=chunk_rows)
        self.service = bootstrap(settings, clients=clients, clock=self.clock, ids=SequentialIds(),
                                 tracer=InMemoryTracer(header="Root=1-abc;Parent=def;Sampled=1")).imports

    def upload(self, body: bytes, caller: Caller = ALICE) -> str:
        """A job with `body` uploaded and dispatched; its id."""
        job = self.service.create(caller).job
        self.files.store(job.key, body)
        self.service.dispatch(job.key)
        return job.job_id

    def run_chunks(self) -> None:
        """Every published chunk, once, in order."""
        for chunk in list(self.topics.chunks):
            self.service.import_chunk(chunk)

    def job(self, job_id: str, caller: Caller = ALICE):
        return self.service.get(caller, job_id)


@pytest.fixture
def world() -> World:
    return World()


# Starting an import


def test_a_new_import_is_a_pending_job_with_a_presigned_upload_for_its_own_key(world):
    created = world.service.create(ALICE)

    assert created.job.status == "pending" and created.job.owner == ALICE.sub
    assert created.upload.fields["key"] == upload_key(ALICE.sub, created.job.job_id)
    assert [(form["key"], form["max_bytes"]) for form in world.files.forms] == [(created.job.key, MAX_FILE_BYTES)]
    assert world.jobs.get(created.job.job_id).expires_at == world.clock.now + timedelta(days=7)


def test_only_the_importer_may_read_the_job(world):
    job_id = world.service.create(ALICE).job.job_id

    assert world.job(job_id).job_id == job_id
    with pytest.raises(Forbidden):
        world.job(job_id, BOB)
    with pytest.raises(NotFound):
        world.job("01KAZZ3M1C5WB1Q8S6Y7P0R2T4")
    with pytest.raises(NotFound):
        world.job("not-an-id")


# Fan-out


def test_the_dispatcher_counts_the_rows_and_publishes_one_message_per_chunk(world):
    job_id = world.upload(csv(*good(7)))

    job = world.jobs.get(job_id)
    assert (job.status, job.rows_total, job.chunks_total) == ("running", 7, 3)
    assert [(c.index, c.first_row, c.rows) for c in world.topics.chunks] == [(0, 2, 3), (1, 5, 3), (2, 8, 1)]
    assert world.topics.trace_headers == ["Root=1-abc;Parent=def;Sampled=1"]
    assert world.files.reads == [(job.key, None, None)]  # one streamed read of the whole file


def test_a_second_notification_for_the_same_job_dispatches_nothing(world):
    job_id = world.upload(csv(*good(4)))

    outcome = world.service.dispatch(world.jobs.get(job_id).key)

    assert outcome.startswith("ignored")
    assert len(world.topics.chunks) == 2


def test_a_dispatch_that_died_before_publishing_everything_publishes_again(world):
    job = world.service.create(ALICE).job
    world.files.store(job.key, csv(*good(4)))
    etag = world.files.etag(job.key)
    world.jobs.start(job.job_id, etag=etag, rows_total=4, chunks_total=2, now=world.clock.now)  # then died

    world.service.dispatch(job.key)

    assert [c.index for c in world.topics.chunks] == [0, 1]
    assert world.jobs.get(job.job_id).dispatched


def test_a_bad_header_fails_the_job_with_row_1_and_announces_it(world):
    job_id = world.upload(b"title,price\nMug,12\n")

    job = world.job(job_id)
    assert job.status == "failed"
    assert [(e.row, e.message[:40]) for e in job.errors] == [(1, "the header must be name,description,pric")]
    assert world.topics.chunks == []
    assert [(e["job_id"], e["status"]) for e in world.topics.completed] == [(job_id, "failed")]


def test_an_empty_file_fails_the_job(world):
    job = world.job(world.upload(b""))

    assert job.status == "failed" and job.errors[0].row is None
    assert "empty" in job.errors[0].message


def test_a_file_over_50_mib_fails_without_being_read(world):
    job = world.service.create(ALICE).job
    world.files.store(job.key, HEADER + b"x" * MAX_FILE_BYTES)

    world.service.dispatch(job.key)

    assert world.jobs.get(job.job_id).status == "failed"
    assert "at most 52,428,800" in world.jobs.get(job.job_id).failure
    assert world.files.reads == []


def test_a_header_without_rows_completes_at_once(world):
    job = world.job(world.upload(HEADER))

    assert (job.status, job.rows_total, job.chunks_total) == ("completed", 0, 0)
    assert [e["status"] for e in world.topics.completed] == ["completed"]


def test_a_notification_for_a_key_that_is_not_an_import_is_ignored(world):
    assert world.service.dispatch("imports/someone/else.csv").startswith("ignored")


# Workers and fan-in


def test_every_valid_row_becomes_a_product_of_the_importer_with_its_row_id(world):
    job_id = world.upload(csv("Mug,Blue,1200,EUR,5", "Bad,,x,EUR,1", "Plate,,900,EUR,3"))
    world.run_chunks()

    job = world.job(job_id)
    assert (job.status, job.rows_imported, job.rows_failed) == ("completed_with_errors", 2, 1)
    assert sorted(world.writer.products) == [product_id_for(job_id, 2), product_id_for(job_id, 4)]
    mug = world.writer.products[product_id_for(job_id, 2)]
    assert (mug.owner, mug.name, mug.description, mug.price_cents, mug.version) == (ALICE.sub, "Mug", "Blue", 1200, 1)
    assert [(e.row, e.message) for e in job.errors] == [(3, "price_cents: must be an integer")]


def test_the_last_chunk_ends_the_job_and_announces_it_once(world):
    job_id = world.upload(csv(*good(7)))

    world.run_chunks()
    world.run_chunks()  # every chunk delivered again

    job = world.jobs.get(job_id)
    assert (job.status, job.chunks_done, job.rows_imported, job.rows_failed) == ("completed", 3, 7, 0)
    assert world.topics.completed == [{
        "type": "ImportCompleted", "job_id": job_id, "owner": ALICE.sub, "status": "completed",
        "rows_total": 7, "rows_imported": 7, "rows_failed": 0, "finished_at": "2026-11-23T12:00:00.000Z"}]


def test_the_last_chunk_is_counted_and_ends_the_job_in_one_write(world):
    job_id = world.upload(csv(*good(7)))
    *others, last = world.topics.chunks
    for chunk in others:
        world.service.import_chunk(chunk)
    writes = world.jobs.writes

    assert world.service.import_chunk(last).outcome == "imported"

    assert world.jobs.writes - writes == 1
    job = world.jobs.get(job_id)
    assert (job.status, job.chunks_done, job.rows_imported, job.notified) == ("completed", 3, 7, True)
    assert [e["rows_imported"] for e in world.topics.completed] == [7]


def test_a_twin_of_the_last_chunk_counting_first_leaves_it_counted_once(world):
    job_id = world.upload(csv(*good(6)))
    first, second = world.topics.chunks
    world.service.import_chunk(first)
    # The twin delivery counts the last chunk between this worker's read and its own write.
    world.jobs.before_complete = lambda job, index: world.service.import_chunk(second)

    assert world.service.import_chunk(second).outcome == "duplicate"

    job = world.jobs.get(job_id)
    assert (job.status, job.chunks_done, job.rows_imported) == ("completed", 2, 6)
    assert {e["rows_imported"] for e in world.topics.completed} == {6}  # at least once, always right


def test_a_chunk_delivered_twice_is_counted_once_and_writes_nothing_again(world):
    job_id = world.upload(csv(*good(4)))
    first = world.topics.chunks[0]

    assert world.service.import_chunk(first).outcome == "imported"
    puts = len(world.writer.puts)
    assert world.service.import_chunk(first).outcome == "duplicate"

    job = world.jobs.get(job_id)
    assert (job.chunks_done, job.rows_imported) == (1, 3)
    assert len(world.writer.puts) == puts


def test_a_worker_dying_mid_chunk_is_retried_and_every_row_lands_once():
    world = World(chunk_rows=60)
    job_id = world.upload(csv(*good(60)))
    (chunk,) = world.topics.chunks
    world.writer.fail_after_batches = 1  # 25 products written, then the worker dies

    with pytest.raises(DependencyUnavailable):
        world.service.import_chunk(chunk)
    assert len(world.writer.products) == 25 and world.jobs.get(job_id).chunks_done == 0
    world.service.import_chunk(chunk)  # the redelivery

    job = world.jobs.get(job_id)
    assert (job.status, job.rows_imported, job.chunks_done) == ("completed", 60, 1)
    assert len(world.writer.products) == 60
    assert len(world.writer.puts) == 60  # the 25 that existed were not written again


def test_a_product_changed_before_the_retry_is_not_overwritten():
    world = World(chunk_rows=60)
    job_id = world.upload(csv(*good(30)))
    (chunk,) = world.topics.chunks
    world.writer.fail_after_batches = 1
    with pytest.raises(DependencyUnavailable):
        world.service.import_chunk(chunk)
    first = product_id_for(job_id, 2)
    world.writer.products[first] = world.writer.products[first].with_changes({"stock": 99}, world.clock.now)

    world.service.import_chunk(chunk)

    assert (world.writer.products[first].stock, world.writer.products[first].version) == (99, 2)


def test_the_last_two_chunks_finishing_together_end_the_job_once(world):
    job_id = world.upload(csv(*good(6)))
    first, second = world.topics.chunks
    # The second worker's count lands between the first worker's writes and its own count.
    world.jobs.before_complete = lambda job, index: world.service.import_chunk(second)

    world.service.import_chunk(first)

    job = world.jobs.get(job_id)
    assert (job.status, job.chunks_done, job.rows_imported) == ("completed", 2, 6)
    assert len(world.topics.completed) == 1


def test_a_job_counted_complete_but_not_ended_is_ended_by_the_next_delivery(world):
    job_id = world.upload(csv(*good(3)))
    (chunk,) = world.topics.chunks
    world.jobs.complete_chunk(job_id, 0, imported=3, failed=0, now=world.clock.now)  # then the worker died

    assert world.service.import_chunk(chunk).outcome == "duplicate"

    assert world.jobs.get(job_id).status == "completed"
    assert [e["status"] for e in world.topics.completed] == ["completed"]


def test_only_the_first_100_errors_are_kept_in_row_order_but_all_are_counted():
    world = World(chunk_rows=150)
    job_id = world.upload(csv(*(["Bad,,x,EUR,1"] * 260 + good(5))))
    world.run_chunks()

    job = world.job(job_id)
    assert (job.rows_failed, job.rows_imported) == (260, 5)
    assert [e.row for e in job.errors] == list(range(2, 102))


def test_a_file_replaced_during_the_import_fails_the_job(world):
    job_id = world.upload(csv(*good(6)))
    world.files.store(world.jobs.get(job_id).key, csv(*good(2)))

    assert world.service.import_chunk(world.topics.chunks[0]).outcome == "failed"

    job = world.job(job_id)
    assert job.status == "failed" and "replaced" in job.errors[0].message
    assert [e["status"] for e in world.topics.completed] == ["failed"]
    assert world.service.import_chunk(world.topics.chunks[1]).outcome == "ignored"


def test_a_chunk_of_a_job_that_no_longer_exists_is_ignored(world):
    job_id = world.upload(csv(*good(3)))
    world.jobs.delete(job_id)

    assert world.service.import_chunk(world.topics.chunks[0]).outcome == "ignored"
    assert world.writer.products == {}


# A chunk that reached the workers' dead-letter queue


def test_a_chunk_in_the_dead_letter_queue_fails_its_job_naming_its_rows_instead_of_leaving_it_running(world):
    job_id = world.upload(csv(*good(7)))
    first, second, third = world.topics.chunks
    world.service.import_chunk(first)
    world.service.import_chunk(third)

    assert world.service.abandon_chunk(second).startswith("failed: rows 5 to 7 could not be imported")

    job = world.jobs.get(job_id)
    assert (job.status, job.rows_imported, job.chunks_done) == ("failed", 4, 2)
    assert job.failure.startswith("rows 5 to 7 could not be imported after repeated attempts")
    assert [e["status"] for e in world.topics.completed] == ["failed"]


def test_a_dead_letter_for_a_chunk_another_delivery_imported_changes_nothing(world):
    job_id = world.upload(csv(*good(4)))
    first, second = world.topics.chunks
    world.service.import_chunk(first)
    world.service.import_chunk(second)

    assert world.service.abandon_chunk(first).startswith("ignored")

    job = world.jobs.get(job_id)
    assert (job.status, job.rows_imported) == ("completed", 4)
    assert [e["status"] for e in world.topics.completed] == ["completed"]


def test_an_upload_in_the_dead_letter_queue_fails_its_pending_job_instead_of_leaving_it_pending(world):
    job = world.service.create(ALICE).job
    world.files.store(job.key, csv(*good(4)))

    assert world.service.abandon_upload(job.key).startswith("failed: the uploaded file could not be read")

    assert world.jobs.get(job.job_id).status == "failed"
    assert [e["status"] for e in world.topics.completed] == ["failed"]


def test_a_dead_letter_for_an_upload_that_was_dispatched_after_all_changes_nothing(world):
    job_id = world.upload(csv(*good(4)))
    key = world.jobs.get(job_id).key

    assert world.service.abandon_upload(key).startswith("ignored")

    world.run_chunks()
    assert world.jobs.get(job_id).status == "completed"
