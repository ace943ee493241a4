"""ImageService, bootstrapped over in-memory fakes and the real Pillow processor: uploads
requested, then processed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chalicelib.bootstrap import bootstrap
from chalicelib.domain.errors import DependencyUnavailable, Forbidden, NotFound
from chalicelib.domain.identity import Caller
from chalicelib.domain.images import FAILED, MAX_IMAGES_PER_PRODUCT, PENDING, READY, TooManyImages, upload_key
from chalicelib.domain.products import new_product
from chalicelib.services.images import PRODUCT_GONE
from tests.support.image_corpus import corpus, jpeg
from tests.unit.fakes import FakeClock, InMemoryTracer, SequentialIds, Unavailable, fake_clients, fake_settings

ALICE = Caller(sub="alice-sub", username="alice")
BOB = Caller(sub="bob-sub", username="bob")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.ids = SequentialIds()
        clients = fake_clients(clock=self.clock)
        self.products, self.images = clients.products, clients.images
        self.uploads, self.media = clients.uploads, clients.media
        self.tracer = InMemoryTracer()
        self.service = bootstrap(fake_settings(), clients=clients, clock=self.clock, ids=self.ids,
                                 tracer=self.tracer).images
        self.product_id = self.product(ALICE)

    def product(self, owner: Caller) -> str:
        product = new_product({"name": "Mug", "description": "", "price_cents": 1, "currency": "EUR", "stock": 1},
                              product_id=self.ids(), owner=owner.sub, now=self.clock())
        self.products.add(product)
        return product.id

    def request(self, content_type: str = "image/jpeg", size_bytes: int = 10_000, caller: Caller = ALICE,
                product_id: str | None = None) -> Any:
        product_id = self.product_id if product_id is None else product_id
        return self.service.request_upload(caller, product_id, content_type=content_type,
                                           size_bytes=size_bytes)

    def upload(self, data: bytes, content_type: str = "image/jpeg", declared: int | None = None) -> str:
        """Request an upload and store the file as S3 would; returns the key."""
        ticket = self.request(content_type, declared or max(1, len(data)))
        key = upload_key(ALICE.sub, self.product_id, ticket.image_id)
        self.uploads.store(key, data, content_type)
        return key

    def shown(self, image_id: str) -> Any:
        return next(i for i in self.products.items[self.product_id].images if i.id == image_id)


@pytest.fixture
def world() -> World:
    return World()


# Requesting an upload


def test_a_requested_upload_is_pending_on_the_product_and_presigned_for_exactly_its_key(world):
    ticket = world.request("image/png", 12_345)

    assert world.shown(ticket.image_id).status == PENDING
    assert world.images.records[ticket.image_id].status == PENDING
    assert world.uploads.forms == [{"key": f"uploads/{ALICE.sub}/{world.product_id}/{ticket.image_id}",
                                    "content_type": "image/png", "max_bytes": 12_345, "expires_in": 900}]


def test_only_the_owner_may_add_images(world):
    with pytest.raises(Forbidden):
        world.request(caller=BOB)
    assert world.products.items[world.product_id].images == ()


@pytest.mark.parametrize("product_id", ["01KQ0000000000000000000000", "../etc", ""])
def test_an_unknown_product_is_not_found(world, product_id):
    with pytest.raises(NotFound):
        world.request(product_id=product_id)


def test_a_product_full_of_images_takes_no_more(world):
    for _ in range(MAX_IMAGES_PER_PRODUCT):
        world.request()
    with pytest.raises(TooManyImages, match=f"at most {MAX_IMAGES_PER_PRODUCT} images"):
        world.request()


def test_at_the_limit_the_oldest_failed_image_makes_room(world):
    first = world.upload(b"not an image at all")
    world.service.process_upload(first)
    for _ in range(MAX_IMAGES_PER_PRODUCT - 1):
        world.request()

    newest = world.request()

    shown = [i.id for i in world.products.items[world.product_id].images]
    assert len(shown) == MAX_IMAGES_PER_PRODUCT and newest.image_id in shown
    assert first.rsplit("/", 1)[1] not in shown


def test_an_image_added_concurrently_is_counted_before_writing_again(world):
    world.images.before_write = lambda: world.request()  # another request lands between read and write

    ticket = world.request()

    assert len(world.products.items[world.product_id].images) == 2
    assert world.shown(ticket.image_id).status == PENDING


# Processing an upload


def test_an_upload_becomes_ready_with_its_size_and_three_renditions(world):
    key = world.upload(jpeg((2400, 1600)))

    done = world.service.process_upload(key)

    image = world.shown(done.image_id)
    assert (done.outcome, image.status, image.width, image.height) == ("ready", READY, 2400, 1600)
    assert set(image.renditions) == {"small", "medium", "large"}
    assert image.renditions["large"].endswith("/1600x1067.jpg")
    assert {k: ct for k, (_, ct) in world.media.objects.items()} == {k: "image/jpeg" for k in image.renditions.values()}
    assert world.images.records[done.image_id].status == READY


@pytest.mark.parametrize("sample", corpus(), ids=lambda s: s.name)
def test_every_file_of_the_corpus_ends_ready_or_failed_with_its_reason(world, sample):
    key = world.upload(sample.data, sample.content_type, declared=sample.declared)

    done = world.service.process_upload(key)

    image = world.shown(done.image_id)
    if sample.size is not None:
        assert (image.status, image.width, image.height) == (READY, *sample.size)
    else:
        assert image.status == FAILED and sample.reason in image.error
        assert image.renditions == {} and world.media.objects == {}


def test_a_second_delivery_changes_nothing(world):
    key = world.upload(jpeg((640, 480)))
    first = world.service.process_upload(key)
    before = (world.shown(first.image_id), dict(world.media.objects), world.media.puts)

    again = world.service.process_upload(key)

    assert again.outcome == "duplicate"
    assert (world.shown(first.image_id), dict(world.media.objects), world.media.puts) == before


def test_a_twin_that_finishes_first_wins_and_the_other_delivery_gives_way(world):
    key = world.upload(jpeg((640, 480)))
    image_id = key.rsplit("/", 1)[1]
    twin_result = dataclasses.replace(world.images.records[image_id], status=FAILED, error="twin")
    real_put = world.media.put

    def put_while_the_twin_finishes(*args: Any) -> None:
        if world.images.records[image_id].status == PENDING:
            world.images.finish(twin_result, world.clock())
        real_put(*args)

    world.media.put = put_while_the_twin_finishes

    assert world.service.process_upload(key).outcome == "duplicate"
    assert world.shown(image_id).error == "twin"


@pytest.mark.parametrize("key", [
    "uploads/alice-sub/not-a-product/whatever",
    "elsewhere/file.jpg",
    "uploads/alice-sub/01KQ0000000000000000000000/01KQ0000000000000000000001",
])
def test_an_upload_under_a_key_without_a_record_is_ignored(world, key):
    assert world.service.process_upload(key).outcome == "ignored"
    assert world.media.objects == {}


def test_an_upload_whose_key_names_another_owner_is_ignored(world):
    key = world.upload(jpeg((64, 64)))
    forged = key.replace(ALICE.sub, BOB.sub)
    world.uploads.store(forged, jpeg((64, 64)), "image/jpeg")

    assert world.service.process_upload(forged).outcome == "ignored"
    assert world.shown(key.rsplit("/", 1)[1]).status == PENDING


def test_an_upload_whose_object_is_gone_fails(world):
    key = world.upload(jpeg((64, 64)))
    del world.uploads.objects[key]

    done = world.service.process_upload(key)

    assert (done.outcome, done.reason) == ("failed", "the uploaded file is gone")


def test_a_throttled_dependency_raises_so_the_message_is_retried_and_the_image_stays_pending(world):
    key = world.upload(jpeg((640, 480)))
    world.media.failing = Unavailable("S3")

    with pytest.raises(DependencyUnavailable):
        world.service.process_upload(key)
    assert world.shown(key.rsplit("/", 1)[1]).status == PENDING

    world.media.failing = None
    assert world.service.process_upload(key).outcome == "ready"


def test_an_image_whose_product_was_deleted_meanwhile_fails_and_leaves_no_renditions(world):
    key = world.upload(jpeg((640, 480)))
    image_id = key.rsplit("/", 1)[1]
    real_put = world.media.put

    def put_after_the_product_is_deleted(*args: Any) -> None:
        world.products.items.pop(world.product_id, None)
        real_put(*args)

    world.media.put = put_after_the_product_is_deleted

    done = world.service.process_upload(key)

    assert (done.outcome, done.reason) == ("failed", PRODUCT_GONE)
    assert world.images.records[image_id].status == FAILED and world.media.objects == {}


def test_each_record_is_annotated_and_each_step_traced(world):
    key = world.upload(jpeg((640, 480)))

    done = world.service.process_upload(key)

    assert world.tracer.annotations == {"image_id": done.image_id, "product_id": world.product_id,
                                        "owner": ALICE.sub}
    assert world.tracer.subsegments == ["download", "decode", "resize", "encode", "upload"]



def test_a_pending_image_missing_from_its_existing_product_is_retried_not_failed(world):
    key = world.upload(jpeg((64, 48)))
    image_id = key.rsplit("/", 1)[1]
    product = world.products.items[world.product_id]
    world.products.items[world.product_id] = dataclasses.replace(product, images=())

    with pytest.raises(DependencyUnavailable):
        world.service.process_upload(key)
    assert world.images.records[image_id].status == PENDING
