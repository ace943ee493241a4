"""Verification of Cognito ID tokens, the same in Lambda and in the local stack.

API Gateway's Cognito authorizer is not evaluated by `chalice local` (chalice #1479), so the app
verifies tokens itself: RS256 signature against the pool's JWKS, issuer, audience, expiry and
token_use. The JWKS is fetched on first use and kept for the container's life; an unknown `kid`
(a rotated key) triggers at most one refetch per minute.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from chalicelib.domain.errors import DependencyUnavailable, Unauthenticated
from chalicelib.domain.identity import Caller

__all__ = ["CognitoTokenVerifier", "fetch_jwks"]

_REFETCH_AFTER_S = 60.0
_LEEWAY_S = 5  # clock skew between Cognito and Lambda


def fetch_jwks(url: str, timeout: float = 3.0) -> dict[str, Any]:
    import urllib.request  # http.client and ssl: only a container that verifies a token pays for them

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - https URL from config
        keys: dict[str, Any] = json.loads(response.read())
    return keys


class CognitoTokenVerifier:
    def __init__(self, *, issuer: str, client_id: str, jwks_url: str,
                 fetch: Callable[[str], dict[str, Any]] = fetch_jwks,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._jwks_url = jwks_url
        self._fetch = fetch
        self._monotonic = monotonic
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def verify(self, token: str) -> Caller:
        """The caller named by a valid ID token; raises Unauthenticated, or DependencyUnavailable
        when the JWKS cannot be fetched."""
        import jwt  # cryptography is heavy; only requests that carry a token pay for it

        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated("the token must be signed with RS256")
        key = self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token, key, algorithms=["RS256"], audience=self._client_id, issuer=self._issuer,
                leeway=_LEEWAY_S, options={"require": ["exp", "iat", "iss", "aud", "sub", "token_use"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        if claims["token_use"] != "id":
            raise Unauthenticated("an ID token is required (token_use must be 'id')")
        return Caller(sub=str(claims["sub"]),
                      username=str(claims.get("cognito:username", claims["sub"])))

    def _key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys and self._may_fetch():
                self._load()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("the token was not signed by this user pool")
        return key

    def _may_fetch(self) -> bool:
        return self._fetched_at is None or self._monotonic() - self._fetched_at >= _REFETCH_AFTER_S

    def _load(self) -> None:
        from jwt import PyJWKSet
        from jwt.exceptions import PyJWKSetError

        try:
            document = self._fetch(self._jwks_url)
        except (OSError, ValueError) as exc:
            raise DependencyUnavailable(f"the user pool's keys could not be fetched: {exc}") from None
        try:
            if not isinstance(document, dict):
                raise PyJWKSetError("the key set is not a JSON object")
            keys = PyJWKSet.from_dict(document).keys
        except PyJWKSetError as exc:
            raise DependencyUnavailable(f"the user pool's key set is unusable: {exc}") from None
        # Only a usable key set counts as fetched: after a failure the next request tries again
        # rather than refusing every token as "not signed by this pool" for a minute.
        self._keys = {k.key_id: k for k in keys if k.key_id}
        self._fetched_at = self._monotonic()
