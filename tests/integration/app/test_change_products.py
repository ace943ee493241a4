"""PATCH and DELETE /products/{id}: only the owner, only at the current version."""

from __future__ import annotations

import json

import pytest

from tests.integration.app.helpers import body_of, create

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def product(api, alice) -> dict:
    return body_of(create(api, alice))


def _patch(api, user, product_id: str, changes: dict, if_match: str | None = '"1"'):
    headers = user.headers(**({"If-Match": if_match} if if_match is not None else {}))
    return api.patch(f"/products/{product_id}", headers=headers, body=json.dumps(changes))


def test_the_owner_patches_at_the_current_version_and_the_version_grows_by_one(api, alice, product):
    response = _patch(api, alice, product["id"], {"stock": 3, "price_cents": 1500})

    assert response.status_code == 200
    changed = body_of(response)
    assert (changed["stock"], changed["price_cents"], changed["version"]) == (3, 1500, 2)
    assert changed["name"] == product["name"] and changed["created_at"] == product["created_at"]
    assert changed["updated_at"] >= product["updated_at"]
    assert response.headers["ETag"] == '"2"'
    assert body_of(api.get(f"/products/{product['id']}")) == changed


def test_the_etag_of_one_patch_is_the_if_match_of_the_next(api, alice, product):
    etag = '"1"'
    for stock in (4, 3, 2):
        response = _patch(api, alice, product["id"], {"stock": stock}, if_match=etag)
        assert response.status_code == 200
        etag = response.headers["ETag"]

    assert body_of(api.get(f"/products/{product['id']}"))["version"] == 4


def test_a_weak_etag_is_accepted_as_if_match(api, alice, product):
    assert _patch(api, alice, product["id"], {"stock": 1}, if_match='W/"1"').status_code == 200


def test_a_patch_without_if_match_is_428_and_changes_nothing(api, alice, product):
    response = _patch(api, alice, product["id"], {"stock": 0}, if_match=None)

    assert response.status_code == 428
    assert body_of(response)["Code"] == "PreconditionRequiredError"
    assert body_of(api.get(f"/products/{product['id']}"))["stock"] == product["stock"]


def test_a_patch_at_a_stale_version_is_412_and_changes_nothing(api, alice, product):
    _patch(api, alice, product["id"], {"stock": 4})

    response = _patch(api, alice, product["id"], {"stock": 0}, if_match='"1"')

    assert response.status_code == 412
    assert body_of(response)["Code"] == "PreconditionFailedError"
    assert "version 2" in body_of(response)["Message"]
    assert body_of(api.get(f"/products/{product['id']}"))["stock"] == 4


@pytest.mark.parametrize("if_match", ["*", "abc", '"0"', '"-1"', '"1", "2"'])
def test_an_if_match_that_is_not_a_version_is_400(api, alice, product, if_match):
    response = _patch(api, alice, product["id"], {"stock": 0}, if_match=if_match)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("If-Match: ")


def test_someone_else_patching_is_403_and_changes_nothing(api, bob, product):
    response = _patch(api, bob, product["id"], {"stock": 0})

    assert response.status_code == 403
    assert body_of(response)["Code"] == "ForbiddenError"
    assert body_of(api.get(f"/products/{product['id']}"))["stock"] == product["stock"]


def test_patching_a_missing_product_is_404(api, alice):
    assert _patch(api, alice, "01ARZ3NDEKTSV4RRFFQ69G5FAV", {"stock": 0}).status_code == 404


@pytest.mark.parametrize("changes,field", [
    ({}, "body"), ({"stock": None}, "stock"), ({"name": None}, "name"), ({"owner": "me"}, "owner"),
    ({"version": 9}, "version"), ({"currency": "usd"}, "currency"),
])
def test_an_invalid_patch_is_400_naming_the_field_and_changes_nothing(api, alice, product, changes, field):
    response = _patch(api, alice, product["id"], changes)

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith(f"{field}: ")
    assert body_of(api.get(f"/products/{product['id']}")) == product


def test_a_patch_may_empty_the_description(api, alice, product):
    response = _patch(api, alice, product["id"], {"description": ""})

    assert response.status_code == 200 and body_of(response)["description"] == ""


def test_the_owner_deletes_and_the_product_is_gone(api, alice, product):
    response = api.delete(f"/products/{product['id']}", headers=alice.headers())

    assert response.status_code == 204 and not response.body
    assert api.get(f"/products/{product['id']}").status_code == 404
    assert api.delete(f"/products/{product['id']}", headers=alice.headers()).status_code == 404
    assert body_of(api.get(f"/products?owner={alice.sub}"))["items"] == []


def test_someone_else_deleting_is_403_and_keeps_the_product(api, bob, product):
    response = api.delete(f"/products/{product['id']}", headers=bob.headers())

    assert response.status_code == 403
    assert api.get(f"/products/{product['id']}").status_code == 200


def test_a_delete_with_a_stale_if_match_is_412_and_keeps_the_product(api, alice, product):
    _patch(api, alice, product["id"], {"stock": 4})

    response = api.delete(f"/products/{product['id']}", headers=alice.headers(**{"If-Match": '"1"'}))

    assert response.status_code == 412
    assert api.get(f"/products/{product['id']}").status_code == 200


def test_a_delete_at_the_current_version_succeeds(api, alice, product):
    response = api.delete(f"/products/{product['id']}", headers=alice.headers(**{"If-Match": '"1"'}))

    assert response.status_code == 204
