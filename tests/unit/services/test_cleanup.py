"""CleanupService, bootstrapped over in-memory fakes, with the time passed in: what goes, what
stays, the limits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from typing import Any

from chalicelib.adapters.tracing import NoTracer
from chalicelib.bootstrap import bootstrap
from chalicelib.domain.cleanup import STALE_IMAGE_ERROR
from chalicelib.domain.ids import new_id
from chalicelib.domain.images import FAILED, PENDING, READY, ImageRecord
from chalicelib.domain.imports import ImportJob, upload_key
from chalicelib.domain.products import new_product
from tests.unit.fakes import FakeClock, fake_clients, fake_settings

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
OWNER = "owner-sub"
_ms = [1_790_000_000_000]


def ulid() -> str:
    _ms[0] += 1
    return new_id(now_ms=_ms[0], randomness=bytes(10))


class World:
    def __init__(self, **settings: Any) -> None:
        """`settings`: changes to the defaults (`cleanup_max_items=3`, ...)."""
        clock = FakeClock(NOW)
        clients = fake_clients(clock=clock)
        self.products, self.images = clients.products, clients.cleanup_images
        self.uploads, self.media, self.import_files = clients.uploads, clients.media, clients.import_files
        self.cursors, self.idempotency, self.jobs = clients.cursors, clients.expiring_records, clients.import_jobs
        self.service = bootstrap(fake_settings(**settings), clients=clients, clock=clock,
                                 tracer=NoTracer()).cleanup

    def run(self, now: datetime = NOW, remaining_ms: int = 300_000):
        return self.service.run(now, lambda: remaining_ms)

    def product(self) -> str:
        product = new_product({"name": "Mug", "description": "", "price_cents": 1, "currency": "EUR", "stock": 1},
                              product_id=ulid(), owner=OWNER, now=NOW)
        self.products.add(product)
        return product.id

    def delete_product(self, product_id: str) -> None:
        del self.products.items[product_id]

    def image(self, product_id: str, *, age: timedelta, status: str = PENDING, uploaded: bool = True,
              renditions: int = 0) -> ImageRecord:
        image_id = ulid()
        keys = {name: f"products/{product_id}/images/{image_id}/{w}x{w}.webp"
                for name, w in (("small", 200), ("medium", 800), ("large", 1600))[:renditions]}
        record = self.images.add(ImageRecord(
            id=image_id, product_id=product_id, owner=OWNER, content_type="image/png", size_bytes=10,
            created_at=NOW - age, status=status, renditions=keys))
        if uploaded:
            self.uploads.store(record.upload_key, at=NOW - age)
        for key in keys.values():
            self.media.store(key, at=NOW - age)
        return record


@pytest.fixture
def world() -> World:
    return World()


# Images


def test_an_image_pending_for_over_24_hours_fails_and_its_upload_goes(world):
    stale = world.image(world.product(), age=timedelta(hours=25))
    recent = world.image(world.product(), age=timedelta(hours=23))

    report = world.run()

    assert (world.images.records[stale.id].status, world.images.records[stale.id].error) == (FAILED, STALE_IMAGE_ERROR)
    assert stale.upload_key not in world.uploads.objects
    assert world.images.records[recent.id].status == PENDING and recent.upload_key in world.uploads.objects
    assert report.counts["images_failed"] == 1 and report.complete


def test_a_stale_pending_image_of_a_deleted_product_is_deleted(world):
    product_id = world.product()
    stale = world.image(product_id, age=timedelta(days=3))
    world.delete_product(product_id)

    report = world.run()

    assert stale.id not in world.images.records and stale.upload_key not in world.uploads.objects
    assert report.counts["image_records_deleted"] == 1 and report.counts["images_failed"] == 0


def test_an_upload_no_record_points_to_goes_once_an_hour_old(world):
    product_id = world.product()
    old = world.uploads.store(f"uploads/{OWNER}/{product_id}/{ulid()}", at=NOW - timedelta(minutes=61))
    in_flight = world.uploads.store(f"uploads/{OWNER}/{product_id}/{ulid()}", at=NOW - timedelta(minutes=59))
    junk = world.uploads.store("uploads/not-a-key", at=NOW - timedelta(days=2))

    report = world.run()

    assert set(world.uploads.objects) == {in_flight}
    assert old not in world.uploads.objects and junk not in world.uploads.objects
    assert report.counts["upload_objects_deleted"] == 2


def test_objects_of_live_images_stay(world):
    product_id = world.product()
    ready = world.image(product_id, age=timedelta(days=9), status=READY, renditions=3)
    failed = world.image(product_id, age=timedelta(days=9), status=FAILED)
    before = (dict(world.uploads.objects), dict(world.media.objects))

    report = world.run()

    assert (world.uploads.objects, world.media.objects) == before
    assert set(world.images.records) == {ready.id, failed.id}
    assert report.counts["objects_listed"] == 5


def test_renditions_no_record_lists_go_but_those_of_a_pending_image_stay(world):
    product_id = world.product()
    failed = world.image(product_id, age=timedelta(hours=5), status=FAILED)
    leftover = world.media.store(f"products/{product_id}/images/{failed.id}/200x200.webp", at=NOW - timedelta(hours=5))
    pending = world.image(product_id, age=timedelta(hours=5))
    in_progress = world.media.store(f"products/{product_id}/images/{pending.id}/200x200.webp",
                                    at=NOW - timedelta(hours=5))
    unknown = world.media.store(f"products/{product_id}/images/{ulid()}/800x600.jpeg", at=NOW - timedelta(hours=5))

    world.run()

    assert leftover not in world.media.objects and unknown not in world.media.objects
    assert in_progress in world.media.objects


def test_the_images_of_a_deleted_product_go_with_their_objects(world):
    product_id = world.product()
    ready = world.image(product_id, age=timedelta(days=2), status=READY, renditions=3)
    failed = world.image(product_id, age=timedelta(days=2), status=FAILED, uploaded=False)
    kept = world.image(world.product(), age=timedelta(days=2), status=READY, renditions=1)
    world.delete_product(product_id)

    report = world.run()

    assert set(world.images.records) == {kept.id}
    assert set(world.media.objects) == set(kept.renditions.values())
    assert set(world.uploads.objects) == {kept.upload_key}
    assert ready.id not in world.images.records and failed.id not in world.images.records
    assert report.counts["image_records_deleted"] == 2


# Records past retention


def test_expired_idempotency_records_go_and_live_ones_stay(world):
    world.idempotency.expires.update({"old": NOW - timedelta(seconds=1), "edge": NOW, "live": NOW + timedelta(hours=1)})

    report = world.run()

    assert set(world.idempotency.expires) == {"live"}
    assert report.counts["idempotency_records_deleted"] == 2


def test_a_key_used_again_after_being_listed_is_not_deleted(world):
    world.idempotency.expires["reused"] = NOW - timedelta(hours=1)
    world.idempotency.between = lambda: world.idempotency.expires.update(reused=NOW + timedelta(hours=48))

    report = world.run()

    assert "reused" in world.idempotency.expires
    assert report.counts["idempotency_records_deleted"] == 0


def test_import_jobs_past_retention_go_with_their_file(world):
    def job(created: datetime) -> str:
        job_id = ulid()
        world.jobs.add(ImportJob(job_id, OWNER, "completed", created, created), expires_at=created + timedelta(days=7))
        world.import_files.store(upload_key(OWNER, job_id), b"name,description,price_cents,currency,stock\n")
        return job_id

    old, young = job(NOW - timedelta(days=8)), job(NOW - timedelta(days=6))

    report = world.run()

    assert set(world.jobs.jobs) == {young}
    assert set(world.import_files.objects) == {upload_key(OWNER, young)}
    assert old not in world.jobs.jobs and report.counts["import_jobs_deleted"] == 1


# Limits, and running again


def test_a_run_stops_at_its_work_cap_and_the_next_goes_on_from_there():
    world = World(cleanup_max_items=3)
    product_id = world.product()
    orphans = [world.uploads.store(f"uploads/{OWNER}/{product_id}/{ulid()}", at=NOW - timedelta(days=1))
               for _ in range(7)]

    first = world.run()

    assert first.stopped == {"uploads": "work cap"} and not first.complete
    assert set(world.uploads.objects) == set(orphans[3:])
    assert world.cursors.values["uploads"] == orphans[2]
    second, third = world.run(), world.run()
    assert world.uploads.objects == {}
    assert third.complete and world.cursors.values["uploads"] is None  # the pass ended: next starts over
    assert first.counts["upload_objects_deleted"] + second.counts["upload_objects_deleted"] + \
        third.counts["upload_objects_deleted"] == 7


def test_a_run_lists_at_most_its_listing_cap():
    world = World(cleanup_max_listed=4)
    product_id = world.product()
    for _ in range(6):
        world.image(product_id, age=timedelta(days=1), status=FAILED)

    report = world.run()

    assert report.counts["objects_listed"] == 4 and report.stopped == {"uploads": "work cap"}
    assert world.run().counts["objects_listed"] == 2


def test_a_run_without_time_left_does_nothing_and_says_so(world):
    world.image(world.product(), age=timedelta(days=2))
    world.idempotency.expires["old"] = NOW - timedelta(days=1)

    report = world.run(remaining_ms=0)

    assert report.stopped == dict.fromkeys(
        ("pending_images", "uploads", "media", "idempotency_records", "import_jobs"), "time")
    assert "old" in world.idempotency.expires and all(r.status == PENDING for r in world.images.records.values())


def test_the_time_is_the_one_passed_in(world):
    image = world.image(world.product(), age=timedelta(hours=1))

    world.run(NOW)
    assert world.images.records[image.id].status == PENDING
    world.run(NOW + timedelta(hours=24))
    assert world.images.records[image.id].status == FAILED


def test_a_second_run_finds_nothing_left_to_do(world):
    product_id = world.product()
    world.image(product_id, age=timedelta(days=2))
    world.image(product_id, age=timedelta(days=2), status=READY, renditions=2)
    world.uploads.store(f"uploads/{OWNER}/{product_id}/{ulid()}", at=NOW - timedelta(days=1))
    world.idempotency.expires["old"] = NOW - timedelta(days=1)
    world.run()

    again = world.run()

    assert all(value == 0 for key, value in again.counts.items() if key != "objects_listed")


# A failing dependency


def test_a_task_whose_store_fails_is_reported_and_the_others_still_run(world):
    from chalicelib.domain.errors import DependencyUnavailable

    def refuse(*_: object) -> None:
        raise DependencyUnavailable("S3 ListObjectsV2 failed: InternalError")

    world.uploads.list = refuse
    world.idempotency.expires["k"] = NOW - timedelta(hours=1)
    stale = world.image(world.product(), age=timedelta(hours=25))

    report = world.run()

    assert report.stopped == {"uploads": "error"} and not report.complete
    assert report.counts["images_failed"] == 1 and world.images.records[stale.id].status == FAILED
    assert report.counts["idempotency_records_deleted"] == 1 and world.idempotency.expires == {}
