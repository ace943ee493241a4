"""Who may call: a valid ID token of this pool and app client, and nothing else (401)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

from devstack.tokens import issue_token
from tests.integration.app.helpers import PRODUCT, body_of

pytestmark = pytest.mark.timeout(60)


def _post(api, authorization: str | None):
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return api.post("/products", headers=headers, body=json.dumps(PRODUCT))


def _assert_401(response, reason: str) -> None:
    assert response.status_code == 401, response.body
    assert body_of(response)["Code"] == "UnauthorizedError"
    assert reason in body_of(response)["Message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _pool_signing_key() -> Any:
    # moto signs every pool's tokens with this key and serves its public half as the pool's JWKS:
    # signing with it is the only way to make a token the pool would have issued, but expired.
    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key


def test_a_valid_id_token_is_accepted_and_its_sub_owns_the_product(api, alice):
    response = _post(api, f"Bearer {alice.token}")

    assert response.status_code == 201
    assert body_of(response)["owner"] == alice.sub


def test_no_authorization_header_is_401(api):
    _assert_401(_post(api, None), "Authorization")


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "token"])
def test_an_authorization_that_is_not_a_bearer_token_is_401(api, authorization):
    _assert_401(_post(api, authorization), "Bearer")


def test_a_garbage_token_is_401(api):
    _assert_401(_post(api, "Bearer not-a-jwt"), "not a JWT")


def test_an_expired_token_of_this_pool_is_401(api, alice):
    claims = _claims(alice.token)
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    expired = jwt.encode(claims, _pool_signing_key(), algorithm="RS256", headers={"kid": "dummy"})

    _assert_401(_post(api, f"Bearer {expired}"), "expired")


def test_the_same_pool_key_signing_a_live_copy_is_accepted(api, alice):
    # The control for the expired case above: only the expiry differs.
    claims = _claims(alice.token)
    claims.update(iat=int(time.time()), exp=int(time.time()) + 600)
    resigned = jwt.encode(claims, _pool_signing_key(), algorithm="RS256", headers={"kid": "dummy"})

    assert _post(api, f"Bearer {resigned}").status_code == 201


@pytest.fixture(scope="module")
def stranger_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_token_signed_by_a_key_not_in_the_jwks_is_401(api, alice, stranger_key):
    forged = jwt.encode(_claims(alice.token), stranger_key, algorithm="RS256", headers={"kid": "dummy"})

    _assert_401(_post(api, f"Bearer {forged}"), "not valid")


def test_a_token_naming_a_key_the_pool_does_not_have_is_401(api, alice, stranger_key):
    forged = jwt.encode(_claims(alice.token), stranger_key, algorithm="RS256", headers={"kid": "rotated-1"})

    _assert_401(_post(api, f"Bearer {forged}"), "not signed by this user pool")


def test_a_token_of_another_user_pool_is_401(api, stack, cognito):
    pool = cognito.create_user_pool(PoolName="another-pool")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="another-app",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    token = issue_token(cognito, pool, client, "someone")

    _assert_401(_post(api, f"Bearer {token}"), "Invalid issuer")


def test_a_token_for_another_app_client_of_the_pool_is_401(api, stack, cognito, alice):
    client = cognito.create_user_pool_client(
        UserPoolId=stack.user_pool_id, ClientName="another-app",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    token = issue_token(cognito, stack.user_pool_id, client, alice.username)

    _assert_401(_post(api, f"Bearer {token}"), "Audience")


def test_an_access_token_is_401(api, stack, cognito, alice):
    password = "Access-Test-Passw0rd!"
    cognito.admin_set_user_password(UserPoolId=stack.user_pool_id, Username=alice.username,
                                    Password=password, Permanent=True)
    access = cognito.admin_initiate_auth(
        UserPoolId=stack.user_pool_id, ClientId=stack.client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": alice.username, "PASSWORD": password},
    )["AuthenticationResult"]["AccessToken"]

    assert _post(api, f"Bearer {access}").status_code == 401


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_changing_a_product_without_a_token_is_401(api, alice, method):
    product_id = body_of(_post(api, f"Bearer {alice.token}"))["id"]

    response = getattr(api, method)(f"/products/{product_id}", headers={
        "Content-Type": "application/json", "If-Match": '"1"'}, body='{"stock": 0}')

    _assert_401(response, "Authorization")
    assert body_of(api.get(f"/products/{product_id}"))["version"] == 1


def test_tokens_of_the_same_user_name_the_same_caller(api, stack, cognito, alice):
    again = issue_token(cognito, stack.user_pool_id, stack.client_id, alice.username)

    assert again != alice.token
    assert _claims(again)["sub"] == alice.sub
