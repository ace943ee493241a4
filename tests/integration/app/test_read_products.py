"""GET /products/{id} and GET /products: reading, limits, owner filter, cursors."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.app.helpers import PRODUCT, body_of, create

pytestmark = pytest.mark.timeout(60)


def test_a_product_is_readable_by_anyone_with_its_etag(api, alice):
    created = create(api, alice)

    response = api.get(created.headers["Location"])

    assert response.status_code == 200
    assert body_of(response) == body_of(created)
    assert response.headers["ETag"] == '"1"'


@pytest.mark.parametrize("product_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-an-id", "%2e%2e"])
def test_an_unknown_or_malformed_id_is_404(api, product_id):
    response = api.get(f"/products/{product_id}")

    assert response.status_code == 404
    assert body_of(response)["Code"] == "NotFoundError"


def _page(api, query: str) -> dict:
    response = api.get(f"/products?{query}")
    assert response.status_code == 200, response.body
    return body_of(response)


def _walk(api, query: str) -> list[list[str]]:
    """Every page of a listing, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        page = _page(api, query + (f"&cursor={cursor}" if cursor else ""))
        pages.append([p["id"] for p in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_paging_by_7_serves_each_of_25_products_exactly_once_newest_first(api, new_user):
    seller = new_user()
    created = [body_of(create(api, seller, _named(i)))["id"] for i in range(25)]

    pages = _walk(api, f"owner={seller.sub}&limit=7")

    assert [len(p) for p in pages] == [7, 7, 7, 4]
    served = [i for page in pages for i in page]
    assert served == created[::-1]


def test_deleting_the_last_product_served_does_not_break_the_next_page(api, alice):
    made = [body_of(create(api, alice, _named(i)))["id"] for i in range(5)]
    first = _page(api, f"owner={alice.sub}&limit=2")
    api.delete(f"/products/{first['items'][-1]['id']}", headers=alice.headers())

    rest = _page(api, f"owner={alice.sub}&limit=10&cursor={first['next_cursor']}")

    assert [p["id"] for p in rest["items"]] == made[::-1][2:]


def test_the_whole_catalogue_pages_without_repeats_or_gaps(api, alice, bob):
    mine = {body_of(create(api, user))["id"] for user in (alice, bob, alice, bob, alice)}

    served = [i for page in _walk(api, "limit=7") for i in page]

    assert len(served) == len(set(served))
    assert mine <= set(served)
    assert served == sorted(served, reverse=True)


def test_a_listing_that_fits_one_page_has_no_next_cursor(api, alice):
    create(api, alice)

    page = _page(api, f"owner={alice.sub}&limit=1")

    assert len(page["items"]) == 1 and page["next_cursor"] is None


def test_the_owner_filter_serves_only_that_owners_products(api, alice, bob):
    alices = {body_of(create(api, alice))["id"] for _ in range(2)}
    create(api, bob)

    page = _page(api, f"owner={alice.sub}")

    assert {p["id"] for p in page["items"]} == alices
    assert {p["owner"] for p in page["items"]} == {alice.sub}


def test_an_owner_with_no_products_has_an_empty_listing(api, alice):
    assert _page(api, f"owner={alice.sub}") == {"items": [], "next_cursor": None}


def test_the_default_limit_is_20(api, new_user):
    seller = new_user()
    for i in range(21):
        create(api, seller, _named(i))

    page = _page(api, f"owner={seller.sub}")

    assert len(page["items"]) == 20 and page["next_cursor"]


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limits_from_1_to_100_are_accepted(api, limit):
    assert api.get(f"/products?limit={limit}").status_code == 200


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5", "", "%C2%B2", "%D9%A1%D9%A0", "+5"])
def test_a_limit_outside_1_to_100_is_a_400_naming_limit(api, limit):
    response = api.get(f"/products?limit={limit}")

    assert response.status_code == 400
    assert body_of(response)["Message"].startswith("limit: ")


def test_an_owner_that_cannot_be_a_user_id_is_a_400(api):
    response = api.get("/products?owner=%3Cscript%3E")

    assert response.status_code == 400 and body_of(response)["Message"].startswith("owner: ")


def test_a_tampered_cursor_is_a_400_naming_cursor(api, alice):
    for _ in range(2):
        create(api, alice)
    cursor = _page(api, f"owner={alice.sub}&limit=1")["next_cursor"]
    document = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    document["after"] = document["after"][:-1] + "!"
    tampered = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    for bad in (tampered, cursor[:-3], "garbage", "x" * 600):
        response = api.get(f"/products?owner={alice.sub}&limit=1&cursor={bad}")
        assert response.status_code == 400, bad
        assert body_of(response)["Message"].startswith("cursor: "), bad


def test_a_cursor_of_another_listing_is_a_400(api, alice, bob):
    for user in (alice, alice, bob):
        create(api, user)
    alices_cursor = _page(api, f"owner={alice.sub}&limit=1")["next_cursor"]

    for other in (f"owner={bob.sub}", ""):
        response = api.get(f"/products?{other}&limit=1&cursor={alices_cursor}")
        assert response.status_code == 400, other
        assert body_of(response)["Message"].startswith("cursor: ")


def _named(i: int) -> dict:
    return {**PRODUCT, "name": f"Product {i}"}
