"""ProductService, bootstrapped over in-memory fakes: creation and idempotency, reading, listing,
changing, deleting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.adapters.tracing import NoTracer
from chalicelib.bootstrap import bootstrap
from chalicelib.domain.commands import CreateProduct, UpdateProduct, parse_command
from chalicelib.domain.errors import (
    ConditionNotMet, Forbidden, IdempotencyConflict, InvalidInput, NotFound, VersionMismatch,
)
from chalicelib.domain.identity import Caller
from chalicelib.domain.paging import encode_cursor
from chalicelib.domain.products import iso
from chalicelib.services.products import ProductService
from tests.unit.fakes import (
    FakeClock, InMemoryIdempotencyStore, InMemoryProductRepository, SequentialIds, fake_clients, fake_settings,
)

ALICE = Caller(sub="alice-sub", username="alice")
BOB = Caller(sub="bob-sub", username="bob")
BODY: dict[str, Any] = {"name": "Mug", "price_cents": 1200, "currency": "EUR", "stock": 5}
SETTINGS = fake_settings(idempotency_ttl_hours=48)
TTL = timedelta(hours=SETTINGS.idempotency_ttl_hours)


class World:
    """The service as bootstrap wires it over fakes, with the fakes in reach."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.ids = SequentialIds()
        self.records = InMemoryIdempotencyStore()
        self.repository = InMemoryProductRepository(self.records, self.clock)
        self.service = self.wired(self.repository)

    def wired(self, repository: InMemoryProductRepository) -> ProductService:
        """The product service over `repository` (and this world's records, clock and ids)."""
        clients = fake_clients(clock=self.clock, idempotency=self.records, products=repository)
        return bootstrap(SETTINGS, clients=clients, clock=self.clock, ids=self.ids, tracer=NoTracer()).products

    def create(self, caller: Caller = ALICE, body: dict[str, Any] | None = None,
               key: str | None = None) -> Any:
        raw = dict(BODY if body is None else body)
        return self.service.create(caller, parse_command(CreateProduct, raw), raw_body=raw,
                                   idempotency_key=key)

    def update(self, caller: Caller, product_id: str, changes: dict[str, Any], version: int) -> Any:
        return self.service.update(caller, product_id, parse_command(UpdateProduct, changes), version)


@pytest.fixture
def world() -> World:
    return World()


# Creating


def test_a_created_product_is_owned_by_the_caller_at_version_1(world):
    created = world.create()

    assert created.status == 201 and not created.replayed
    assert created.product.owner == ALICE.sub
    assert created.product.version == 1
    assert iso(created.product.created_at) == iso(created.product.updated_at) == "2026-11-23T12:00:00.000Z"
    assert world.repository.get(created.product.id).name == "Mug"


def test_a_replay_with_the_same_key_and_body_returns_the_first_response_and_creates_nothing(world):
    first = world.create(key="k1")
    world.clock.advance(timedelta(minutes=5))

    again = world.create(key="k1")

    assert again.replayed and again.status == 201
    assert again.product == first.product
    assert list(world.repository.items) == [first.product.id]


def test_a_replay_matches_the_body_by_content_not_by_key_order(world):
    first = world.create(key="k1")

    again = world.create(key="k1", body=dict(reversed(list(BODY.items()))))

    assert again.replayed and again.product == first.product


def test_the_same_key_with_another_body_is_a_conflict_and_creates_nothing(world):
    world.create(key="k1")

    with pytest.raises(IdempotencyConflict):
        world.create(key="k1", body={**BODY, "name": "Cup"})
    assert len(world.repository.items) == 1


def test_another_caller_using_the_same_key_gets_a_product_of_their_own(world):
    alices = world.create(key="shared")

    bobs = world.create(caller=BOB, key="shared", body={**BODY, "name": "Cup"})

    assert not bobs.replayed
    assert bobs.product.owner == BOB.sub and bobs.product.id != alices.product.id
    assert len(world.repository.items) == 2


def test_requests_without_a_key_are_never_replays(world):
    world.create()
    world.create()

    assert len(world.repository.items) == 2


def test_a_key_is_still_honoured_just_before_it_expires(world):
    first = world.create(key="k1")
    world.clock.advance(TTL - timedelta(seconds=1))

    assert world.create(key="k1").product == first.product


def test_an_expired_key_starts_afresh(world):
    first = world.create(key="k1")
    world.clock.advance(TTL)

    fresh = world.create(key="k1", body={**BODY, "name": "Cup"})

    assert not fresh.replayed
    assert fresh.product.id != first.product.id and fresh.product.name == "Cup"
    world.clock.advance(timedelta(minutes=1))
    assert world.create(key="k1", body={**BODY, "name": "Cup"}).product == fresh.product


# Reading and listing


def test_get_returns_the_stored_product(world):
    created = world.create()

    assert world.service.get(created.product.id) == created.product


@pytest.mark.parametrize("product_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-an-id", ""])
def test_get_of_an_unknown_or_malformed_id_is_not_found(world, product_id):
    with pytest.raises(NotFound):
        world.service.get(product_id)


def _all_pages(world: World, owner: str | None, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        result = world.service.list(owner=owner, limit=limit, cursor=cursor)
        pages.append([p.id for p in result.items])
        cursor = result.next_cursor
        if cursor is None:
            return pages


def test_paging_serves_every_product_once_newest_first_and_ends_without_an_empty_page(world):
    for _ in range(21):
        world.create()

    pages = _all_pages(world, owner=None, limit=7)

    assert [len(p) for p in pages] == [7, 7, 7]
    served = [i for page in pages for i in page]
    assert served == sorted(world.ids.issued, reverse=True)


def test_listing_by_owner_serves_only_their_products(world):
    for caller in (ALICE, BOB, ALICE, BOB, ALICE):
        world.create(caller=caller)

    pages = _all_pages(world, owner=BOB.sub, limit=1)

    served = [i for page in pages for i in page]
    bobs = [i for i, p in world.repository.items.items() if p.owner == BOB.sub]
    assert served == sorted(bobs, reverse=True)


def test_a_cursor_of_the_catalogue_is_rejected_for_an_owner_listing(world):
    for _ in range(3):
        world.create()
    cursor = world.service.list(owner=None, limit=1, cursor=None).next_cursor

    with pytest.raises(InvalidInput) as caught:
        world.service.list(owner=ALICE.sub, limit=1, cursor=cursor)

    assert caught.value.field == "cursor"


def test_a_cursor_of_one_owner_is_rejected_for_another(world):
    cursor = encode_cursor(f"owner:{ALICE.sub}", world.ids())

    with pytest.raises(InvalidInput):
        world.service.list(owner=BOB.sub, limit=1, cursor=cursor)


# Changing and deleting


def test_an_update_by_the_owner_at_the_current_version_applies_and_bumps_the_version(world):
    created = world.create()
    world.clock.advance(timedelta(minutes=1))

    updated = world.update(ALICE, created.product.id, {"stock": 3, "name": "Big mug"}, version=1)

    assert (updated.stock, updated.name, updated.version) == (3, "Big mug", 2)
    assert updated.updated_at == world.clock.now and updated.created_at != updated.updated_at
    assert updated.price_cents == 1200


def test_an_update_at_a_stale_version_is_a_version_mismatch_naming_both_versions(world):
    product_id = world.create().product.id
    world.update(ALICE, product_id, {"stock": 4}, version=1)

    with pytest.raises(VersionMismatch) as caught:
        world.update(ALICE, product_id, {"stock": 3}, version=1)

    assert (caught.value.expected, caught.value.current) == (1, 2)
    assert world.repository.get(product_id).stock == 4


def test_an_update_by_someone_else_is_forbidden_even_at_a_stale_version(world):
    product_id = world.create().product.id

    with pytest.raises(Forbidden):
        world.update(BOB, product_id, {"stock": 0}, version=7)
    assert world.repository.get(product_id).stock == 5


@pytest.mark.parametrize("product_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "malformed"])
def test_an_update_of_a_missing_product_is_not_found_whatever_the_version(world, product_id):
    with pytest.raises(NotFound):
        world.update(ALICE, product_id, {"stock": 0}, version=7)


def test_a_delete_by_the_owner_removes_the_product(world):
    product_id = world.create().product.id

    world.service.delete(ALICE, product_id, expected_version=None)

    with pytest.raises(NotFound):
        world.service.get(product_id)


def test_a_delete_by_someone_else_is_forbidden_and_keeps_the_product(world):
    product_id = world.create().product.id

    with pytest.raises(Forbidden):
        world.service.delete(BOB, product_id, expected_version=None)
    assert world.repository.get(product_id) is not None


def test_a_delete_at_a_stale_version_is_a_version_mismatch(world):
    product_id = world.create().product.id
    world.update(ALICE, product_id, {"stock": 4}, version=1)

    with pytest.raises(VersionMismatch):
        world.service.delete(ALICE, product_id, expected_version=1)
    assert world.repository.get(product_id) is not None


def test_deleting_twice_is_not_found_the_second_time(world):
    product_id = world.create().product.id
    world.service.delete(ALICE, product_id, expected_version=None)

    with pytest.raises(NotFound):
        world.service.delete(ALICE, product_id, expected_version=None)


class _ChangedUnderfoot(InMemoryProductRepository):
    """The conditional write fails, yet the read after it finds every condition met:
    another writer got in between."""

    def update(self, *args: Any, **kwargs: Any) -> Any:
        raise ConditionNotMet("raced")


def test_a_write_that_lost_a_race_is_reported_as_a_version_mismatch(world):
    product_id = world.create().product.id
    racing = _ChangedUnderfoot(world.records, world.clock)
    racing.items = world.repository.items
    service = world.wired(racing)

    with pytest.raises(VersionMismatch):
        service.update(ALICE, product_id, parse_command(UpdateProduct, {"stock": 1}), 1)
