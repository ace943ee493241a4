"""The abuse review of README's Security section, one behaviour per test: who may call each route,
how much a body may carry, that tokens never reach the logs, and CORS only for configured origins."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from moto.utilities.utils import load_resource

from chalicelib.domain.commands import MAX_BODY_BYTES
from tests.integration.app.helpers import PRODUCT, User, body_of, create
from tests.support.app_wiring import install_app

pytestmark = pytest.mark.timeout(60)

# Every route anyone may call without a token; any other route must answer 401 without one.
PUBLIC = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/products"),
          ("GET", "/products/{product_id}")}
ULID = "01M84M5RDHNTDSJCHWRX56RQSM"


def _routes() -> list[tuple[str, str]]:
    from app import app

    return sorted((method, path) for path, methods in app.routes.items() for method in methods
                  if method != "OPTIONS" and (method, path) not in PUBLIC)


def _call(api: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return getattr(api, method.lower())(path, headers=headers,
                                        body=json.dumps(body) if body is not None else "")


def _expired(user: User) -> str:
    # moto signs every pool's tokens with this published key: the only way to make a token the
    # pool would have issued, but expired an hour ago.
    claims = jwt.decode(user.token, options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    key = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dummy"})


def _concrete(path: str) -> str:
    return path.replace("{product_id}", ULID).replace("{order_id}", ULID).replace("{job_id}", ULID)


@pytest.mark.parametrize("method,path", _routes())
def test_every_route_but_the_public_reads_answers_401_without_a_token(api, method, path):
    response = _call(api, method, _concrete(path), {"Content-Type": "application/json", "If-Match": '"1"'},
                     {"stock": 1})

    assert response.status_code == 401, (method, path, response.body)
    assert body_of(response)["Code"] == "UnauthorizedError"


@pytest.mark.parametrize("method,path", _routes())
def test_every_route_but_the_public_reads_answers_401_to_an_expired_token(api, alice, method, path):
    headers = {"Authorization": f"Bearer {_expired(alice)}", "Content-Type": "application/json",
               "If-Match": '"1"'}

    response = _call(api, method, _concrete(path), headers, {"stock": 1})

    assert response.status_code == 401, (method, path, response.body)
    assert "expired" in body_of(response)["Message"]


@pytest.fixture
def alices_things(api, alice, bob, orders_queue) -> dict[str, str]:
    """A product, an order and an import of alice's."""
    product = body_of(create(api, alice))["id"]
    order = body_of(_call(api, "POST", "/orders", alice.headers(),
                          {"product_id": product, "quantity": 1, "payment_method": "pm_card_visa"}))
    job = body_of(_call(api, "POST", "/imports", alice.headers()))
    return {"product": product, "order": order["order_id"], "job": job["job_id"]}


def test_someone_elses_resources_answer_403_and_stay_unchanged(api, alice, bob, alices_things):
    product, order, job = alices_things["product"], alices_things["order"], alices_things["job"]
    attempts = [
        ("PATCH", f"/products/{product}", {"stock": 0}),
        ("DELETE", f"/products/{product}", None),
        ("POST", f"/products/{product}/images", {"content_type": "image/png", "size_bytes": 10}),
        ("GET", f"/orders/{order}", None),
        ("POST", f"/orders/{order}/cancel", None),
        ("GET", f"/imports/{job}", None),
    ]

    for method, path, body in attempts:
        response = _call(api, method, path, bob.headers(**{"If-Match": '"1"'}), body)
        assert response.status_code == 403, (method, path, response.body)
        assert body_of(response)["Code"] == "ForbiddenError"
    after = body_of(api.get(f"/products/{product}"))
    assert (after["version"], after["stock"], after["images"]) == (1, PRODUCT["stock"], [])
    mine = _call(api, "GET", f"/orders/{order}", alice.headers())
    assert mine.status_code == 200 and body_of(mine)["status"] == "queued"


@pytest.mark.parametrize("method,path,limit", [
    ("POST", "/products", MAX_BODY_BYTES),
    ("PATCH", "/products/{product_id}", MAX_BODY_BYTES),
    ("POST", "/orders", 1024),
    ("POST", "/products/{product_id}/images", 1024),
    ("POST", "/imports", 1024),
])
def test_a_body_over_the_routes_limit_is_a_400_naming_the_body_and_changes_nothing(api, alice, method, path, limit):
    product = body_of(create(api, alice))["id"]
    # Valid JSON padded with whitespace: only its size is wrong.
    oversized = ('{"stock": 1}' + " " * limit).encode()

    response = getattr(api, method.lower())(path.replace("{product_id}", product),
                                            headers=alice.headers(**{"If-Match": '"1"'}), body=oversized)

    assert response.status_code == 400, response.body
    assert body_of(response)["Message"] == f"body: must be at most {limit} bytes"
    assert body_of(api.get(f"/products/{product}"))["version"] == 1


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Everything the app logs: its JSON lines (written to the process's stdout) and any
    record of the logging module (botocore, pynamodb, chalice), at DEBUG."""
    caplog.set_level(logging.DEBUG)

    def read() -> str:
        out, err = capfd.readouterr()
        return out + err + "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)

    yield read


def test_no_token_reaches_the_logs(api, alice, bob, captured_logs):
    product = body_of(create(api, alice))["id"]
    _call(api, "PATCH", f"/products/{product}", alice.headers(**{"If-Match": '"1"'}), {"stock": 3})
    _call(api, "PATCH", f"/products/{product}", bob.headers(**{"If-Match": '"2"'}), {"stock": 0})  # 403
    _call(api, "POST", "/orders", alice.headers(), {"product_id": product, "quantity": 1.5})  # 400
    forged = alice.token[:-8] + "AAAAAAAA"
    _call(api, "POST", "/products", {"Authorization": f"Bearer {forged}"}, PRODUCT)  # 401

    logs = captured_logs()

    assert logs.count("duration_ms") >= 4  # the app did log these requests, with their routes
    for token in (alice.token, bob.token, forged):
        signature = token.rsplit(".", 1)[1]
        assert token not in logs and signature not in logs


@pytest.fixture
def allowed_origins(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://shop.example.com, https://admin.example.com")
    install_app()
    yield
    monkeypatch.delenv("CORS_ALLOW_ORIGINS")
    install_app()


def test_a_configured_origin_is_allowed_on_answers_and_preflights(api, alice, allowed_origins):
    origin = "https://shop.example.com"

    answer = api.get("/products", headers={"Origin": origin})
    preflight = api.options("/products/" + ULID, headers={
        "Origin": origin, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, if-match"})

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "PATCH", "DELETE", "OPTIONS"}
    assert {"Authorization", "If-Match"} <= set(preflight.headers["Access-Control-Allow-Headers"].split(", "))


@pytest.mark.parametrize("origin", ["https://evil.example.net", "https://shop.example.com.evil.net", "null"])
def test_a_foreign_origin_gets_no_cors_header(api, alice, allowed_origins, origin):
    answer = create(api, alice, **{"Origin": origin})
    preflight = api.options("/products", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})

    for response in (answer, preflight):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], response.headers
        assert response.headers["Vary"] == "Origin"


def test_by_default_no_origin_is_allowed(api):
    response = api.get("/health", headers={"Origin": "https://shop.example.com"})

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


_SUB = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # Cognito's sub: a UUID
_ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


def test_upload_keys_are_made_of_the_callers_sub_and_ids_the_app_issued(api, alice):
    hostile = {**PRODUCT, "name": "../../etc/passwd", "description": "uploads/someone-else/x"}
    product = body_of(create(api, alice, hostile))["id"]
    image = body_of(_call(api, "POST", f"/products/{product}/images", alice.headers(),
                          {"content_type": "image/png", "size_bytes": 10}))
    job = body_of(_call(api, "POST", "/imports", alice.headers()))
    probe = _call(api, "POST", "/products/..%2F..%2Fmedia/images", alice.headers(),
                  {"content_type": "image/png", "size_bytes": 10})

    assert re.fullmatch(rf"uploads/{_SUB}/{_ULID}/{_ULID}", image["upload"]["fields"]["key"])
    assert image["upload"]["fields"]["key"].split("/")[1:3] == [alice.sub, product]
    assert re.fullmatch(rf"imports/{_SUB}/{_ULID}\.csv", job["upload"]["fields"]["key"])
    assert probe.status_code == 404
