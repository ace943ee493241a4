"""Cognito ID token verification, with keys made here and the JWKS served by an injected fetch."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from chalicelib.adapters.cognito import CognitoTokenVerifier
from chalicelib.domain.errors import DependencyUnavailable, Unauthenticated
from chalicelib.domain.identity import Caller

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool"
CLIENT_ID = "client-123"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        return {**RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True),
                "kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, kid: str | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"sub": "sub-alice", "cognito:username": "alice", "iss": ISSUER, "aud": CLIENT_ID,
                  "token_use": "id", "iat": now, "exp": now + 3600, **overrides}
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": kid or self.kid})


# Key generation is the slow part of this module; two keys serve every test.
POOL_KEY = SigningKey("pool-key-1")
STRANGER_KEY = SigningKey("stranger-key")


class JwksEndpoint:
    """A fetch function that serves whatever key set the test puts up, and counts its calls."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.down = False
        self.broken: Any = None  # served instead of the key set while set

    def __call__(self, url: str) -> Any:
        assert url == JWKS_URL
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        if self.broken is not None:
            return self.broken
        return {"keys": [k.jwk() for k in self.keys]}


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_verifier(endpoint: JwksEndpoint, monotonic: Monotonic | None = None) -> CognitoTokenVerifier:
    return CognitoTokenVerifier(issuer=ISSUER, client_id=CLIENT_ID, jwks_url=JWKS_URL, fetch=endpoint,
                                monotonic=monotonic or Monotonic())


@pytest.fixture
def jwks() -> JwksEndpoint:
    return JwksEndpoint(POOL_KEY)


@pytest.fixture
def verifier(jwks) -> CognitoTokenVerifier:
    return make_verifier(jwks)


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    return f"{signing_input}.{part(signature)}"


def test_a_valid_id_token_names_the_caller_by_its_sub(verifier):
    assert verifier.verify(POOL_KEY.sign()) == Caller(sub="sub-alice", username="alice")


def test_the_username_falls_back_to_the_sub(verifier):
    assert verifier.verify(POOL_KEY.sign(**{"cognito:username": None})).username == "sub-alice"


def test_a_token_signed_by_another_key_under_the_pools_kid_is_rejected(verifier):
    forged = STRANGER_KEY.sign(kid=POOL_KEY.kid)

    with pytest.raises(Unauthenticated, match="not valid"):
        verifier.verify(forged)


def test_a_token_whose_payload_was_altered_is_rejected(verifier):
    header, payload, signature = POOL_KEY.sign().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "sub-mallory"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    with pytest.raises(Unauthenticated):
        verifier.verify(f"{header}.{altered}.{signature}")


def test_an_expired_token_is_rejected(verifier):
    an_hour_ago = int(time.time()) - 3600

    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(POOL_KEY.sign(iat=an_hour_ago - 3600, exp=an_hour_ago))


def test_a_token_of_another_pool_is_rejected(verifier):
    with pytest.raises(Unauthenticated, match="not valid"):
        verifier.verify(POOL_KEY.sign(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"))


def test_a_token_for_another_app_client_is_rejected(verifier):
    with pytest.raises(Unauthenticated, match="not valid"):
        verifier.verify(POOL_KEY.sign(aud="another-client"))


def test_an_access_token_is_not_an_id_token(verifier):
    with pytest.raises(Unauthenticated, match="token_use"):
        verifier.verify(POOL_KEY.sign(token_use="access"))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "token_use", "aud", "iss"])
def test_a_token_missing_a_required_claim_is_rejected(verifier, claim):
    with pytest.raises(Unauthenticated):
        verifier.verify(POOL_KEY.sign(**{claim: None}))


def test_an_unsigned_token_is_rejected(verifier):
    claims = {"sub": "sub-mallory", "iss": ISSUER, "aud": CLIENT_ID, "token_use": "id",
              "iat": int(time.time()), "exp": int(time.time()) + 3600}

    with pytest.raises(Unauthenticated, match="RS256"):
        verifier.verify(_unsigned({"alg": "none", "typ": "JWT", "kid": POOL_KEY.kid}, claims))


def test_a_token_signed_with_hs256_using_the_public_key_as_secret_is_rejected(verifier):
    claims = {"sub": "sub-mallory", "iss": ISSUER, "aud": CLIENT_ID, "token_use": "id",
              "iat": int(time.time()), "exp": int(time.time()) + 3600}
    header = {"alg": "HS256", "typ": "JWT", "kid": POOL_KEY.kid}
    unsigned = _unsigned(header, claims)
    signing_input = unsigned.rsplit(".", 1)[0].encode()
    signature = hmac.new(POOL_KEY.public_pem(), signing_input, hashlib.sha256).digest()

    with pytest.raises(Unauthenticated, match="RS256"):
        verifier.verify(_unsigned(header, claims, signature))


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "", "Bearer x"])
def test_something_that_is_not_a_jwt_is_rejected(verifier, token):
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


def test_the_key_set_is_fetched_once_for_many_verifications(jwks, verifier):
    for _ in range(10):
        verifier.verify(POOL_KEY.sign())

    assert jwks.calls == 1


def test_an_unknown_kid_refetches_at_most_once_a_minute(jwks):
    clock = Monotonic()
    verifier = make_verifier(jwks, clock)
    verifier.verify(POOL_KEY.sign())
    rotated = SigningKey("pool-key-2")
    jwks.keys.append(rotated)

    clock.now += 30
    with pytest.raises(Unauthenticated, match="not signed by this user pool"):
        verifier.verify(rotated.sign())
    assert jwks.calls == 1

    clock.now += 30
    assert verifier.verify(rotated.sign()).sub == "sub-alice"
    assert jwks.calls == 2

    clock.now += 1
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            verifier.verify(STRANGER_KEY.sign())
    assert jwks.calls == 2


def test_a_key_removed_from_the_set_stops_verifying_after_the_refetch(jwks):
    clock = Monotonic()
    verifier = make_verifier(jwks, clock)
    old_token = POOL_KEY.sign()
    verifier.verify(old_token)
    jwks.keys = [SigningKey("pool-key-2")]

    clock.now += 61
    verifier.verify(jwks.keys[0].sign())

    with pytest.raises(Unauthenticated):
        verifier.verify(old_token)


def test_an_unreachable_key_set_is_a_dependency_failure_and_is_retried_on_the_next_request(jwks, verifier):
    jwks.down = True

    with pytest.raises(DependencyUnavailable):
        verifier.verify(POOL_KEY.sign())

    jwks.down = False
    assert verifier.verify(POOL_KEY.sign()).sub == "sub-alice"
    assert jwks.calls == 2


@pytest.mark.parametrize("broken", [{"keys": []}, {"keys": "x"}, {"keys": [{"kty": "RSA"}]}, ["a", "list"]])
def test_an_unusable_key_set_is_a_dependency_failure_and_is_retried_next_time(jwks, verifier, broken):
    jwks.broken = broken

    with pytest.raises(DependencyUnavailable):
        verifier.verify(POOL_KEY.sign())

    jwks.broken = None
    assert verifier.verify(POOL_KEY.sign()).sub == "sub-alice"
