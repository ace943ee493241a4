"""The in-memory fakes of tests/unit and the pynamodb adapters keep the same contract.

Every story here runs against both, so a unit test passing on the fakes means the same of DynamoDB.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.bootstrap import aws_clients
from chalicelib.config import load_settings
from chalicelib.domain.errors import ConditionNotMet, KeyAlreadyUsed
from chalicelib.domain.idempotency import IdempotencyRecord, StoredResponse
from chalicelib.domain.ids import new_id
from chalicelib.domain.products import Product
from tests.unit.fakes import FakeClock, InMemoryIdempotencyStore, InMemoryProductRepository

pytestmark = pytest.mark.timeout(60)


def _now() -> datetime:
    # TTL attributes keep whole seconds: records made at whole seconds read back equal.
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(params=["in-memory", "pynamodb"])
def ports(request, stack) -> tuple[Any, Any]:
    if request.param == "in-memory":
        store = InMemoryIdempotencyStore()
        return InMemoryProductRepository(store, FakeClock(datetime.now(timezone.utc))), store
    clients = aws_clients(load_settings())  # the adapters as a Lambda container wires them
    return clients.products, clients.idempotency


@pytest.fixture
def owner() -> str:
    return f"owner-{uuid.uuid4()}"


def _product(owner: str, **overrides: Any) -> Product:
    now = _now()
    fields: dict[str, Any] = dict(
        id=new_id(), owner=owner, name="Mug", description="", price_cents=1200, currency="EUR", stock=5,
        version=1, created_at=now, updated_at=now)
    return Product(**{**fields, **overrides})


def _record(key: str, expires_at: datetime, product_id: str = "x") -> IdempotencyRecord:
    return IdempotencyRecord(key=key, fingerprint="f", response=StoredResponse(201, {"id": product_id}),
                             expires_at=expires_at)


def test_an_added_product_reads_back_equal(ports, owner):
    products, _ = ports
    product = _product(owner, description="Blue")

    products.add(product)

    assert products.get(product.id) == product


def test_a_missing_product_reads_as_none(ports):
    products, _ = ports

    assert products.get(new_id()) is None


def test_an_update_applies_the_changes_and_bumps_the_version(ports, owner):
    products, _ = ports
    product = _product(owner)
    products.add(product)
    later = product.updated_at + timedelta(minutes=1)

    changed = products.update(product.id, owner=owner, expected_version=1, changes={"stock": 0}, now=later)

    assert (changed.stock, changed.version, changed.updated_at) == (0, 2, later)
    assert products.get(product.id) == changed


@pytest.mark.parametrize("case", ["missing", "other owner", "stale version"])
def test_an_update_whose_condition_fails_raises_condition_not_met_and_changes_nothing(ports, owner, case):
    products, _ = ports
    product = _product(owner)
    products.add(product)
    product_id, who, version = {
        "missing": (new_id(), owner, 1), "other owner": (product.id, "someone-else", 1),
        "stale version": (product.id, owner, 2)}[case]

    with pytest.raises(ConditionNotMet):
        products.update(product_id, owner=who, expected_version=version, changes={"stock": 0}, now=_now())
    assert products.get(product.id) == product
    if case == "missing":
        assert products.get(product_id) is None  # a refused update must not create an item


@pytest.mark.parametrize("case", ["missing", "other owner", "stale version"])
def test_a_delete_whose_condition_fails_raises_condition_not_met_and_keeps_the_product(ports, owner, case):
    products, _ = ports
    product = _product(owner)
    products.add(product)
    product_id, who, version = {
        "missing": (new_id(), owner, None), "other owner": (product.id, "someone-else", None),
        "stale version": (product.id, owner, 2)}[case]

    with pytest.raises(ConditionNotMet):
        products.delete(product_id, owner=who, expected_version=version)
    assert products.get(product.id) == product


def test_a_delete_by_the_owner_with_or_without_the_version_removes_the_product(ports, owner):
    products, _ = ports
    first, second = _product(owner), _product(owner)
    products.add(first)
    products.add(second)

    products.delete(first.id, owner=owner, expected_version=None)
    products.delete(second.id, owner=owner, expected_version=1)

    assert products.get(first.id) is None and products.get(second.id) is None


def test_add_remembers_the_record_in_the_same_write(ports, owner):
    products, records = ports
    product = _product(owner)
    record = _record(f"k#{owner}", _now() + timedelta(hours=1), product.id)

    products.add(product, remember=record)

    assert products.get(product.id) == product
    assert records.get(record.key, _now()) == record


def test_a_live_key_refuses_the_second_add_which_writes_nothing(ports, owner):
    products, records = ports
    key = f"k#{owner}"
    products.add(_product(owner), remember=_record(key, _now() + timedelta(hours=1)))
    second = _product(owner)

    with pytest.raises(KeyAlreadyUsed):
        products.add(second, remember=_record(key, _now() + timedelta(hours=1), second.id))

    assert products.get(second.id) is None
    assert records.get(key, _now()).response.body == {"id": "x"}


@pytest.mark.parametrize("expired_for", [timedelta(0), timedelta(minutes=1)])
def test_an_expired_key_reads_as_none_and_is_free_for_the_next_add(ports, owner, expired_for):
    products, records = ports
    key = f"k#{owner}"
    now = _now()
    products.add(_product(owner), remember=_record(key, now - expired_for))
    assert records.get(key, now) is None

    second = _product(owner)
    products.add(second, remember=_record(key, now + timedelta(hours=1), second.id))

    assert records.get(key, now).response.body == {"id": second.id}


def test_listing_serves_newest_first_in_pages_that_end_exactly(ports, owner):
    products, _ = ports
    made = [_product(owner, id=new_id(now_ms=1_795_000_000_000 + i)) for i in range(5)]
    for product in made:
        products.add(product)
    products.add(_product(f"{owner}-other"))

    first = products.list(owner=owner, limit=2, after=None)
    second = products.list(owner=owner, limit=2, after=first.last_id)
    third = products.list(owner=owner, limit=2, after=second.last_id)
    exact = products.list(owner=owner, limit=5, after=None)

    newest_first = [p.id for p in reversed(made)]
    assert [[p.id for p in page.items] for page in (first, second, third)] == [
        newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert (first.last_id, second.last_id, third.last_id) == (newest_first[1], newest_first[3], None)
    assert exact.last_id is None and len(exact.items) == 5
