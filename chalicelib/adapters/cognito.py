"""The Cognito user pool: verifying its ID tokens, and finding a user's e-mail address.

Tokens: API Gateway's Cognito authorizer is not evaluated by `chalice local` (chalice #1479), so the app
verifies tokens itself: RS256 signature against the pool's JWKS, issuer, audience, expiry and
token_use. The JWKS is fetched on first use and kept for the container's life; an unknown `kid`
(a rotated key) triggers at most one refetch per minute.

Users: CognitoDirectory finds a user by `sub` with ListUsers (the pool's usernames are not subs),
and keeps the addresses it found for a few minutes per container.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import is_transient_aws_error
from chalicelib.domain.errors import DependencyUnavailable, Unauthenticated
from chalicelib.domain.identity import Caller, is_user_id

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

__all__ = ["CognitoTokenVerifier", "CognitoDirectory", "fetch_jwks"]

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


class CognitoDirectory:
    """The Directory port over the user pool: a user's `email` attribute, found by `sub`."""

    def __init__(self, client: Callable[[], CognitoIdentityProviderClient], user_pool_id: str, *,
                 cache_seconds: float = 300.0, cache_size: int = 1024,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`client`: gives the container's cognito-idp client; an address found is reused for
        `cache_seconds` (a changed address reaches mail after that), at most `cache_size` of them."""
        self._cognito = client
        self._pool = user_pool_id
        self._ttl = cache_seconds
        self._size = cache_size
        self._monotonic = monotonic
        self._found: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def email_of(self, user_id: str) -> str | None:
        """The `email` of the user whose `sub` is `user_id`; None when no user has that sub (an id
        that is not a sub's shape included: it is never sent to Cognito) or the user has no address.

        Raises DependencyUnavailable when Cognito is throttling, failing or unreachable; other
        refusals (no permission, no such pool: the deployment's fault) pass as botocore's ClientError.
        """
        if not is_user_id(user_id):  # also keeps quotes and backslashes out of the filter
            return None
        now = self._monotonic()
        with self._lock:
            cached = self._found.get(user_id)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        try:
            answer = self._cognito().list_users(
                UserPoolId=self._pool, Filter=f'sub = "{user_id}"', Limit=1, AttributesToGet=["email"])
        except (ClientError, BotoCoreError) as exc:
            if is_transient_aws_error(exc):
                raise DependencyUnavailable(f"Cognito ListUsers failed: {exc}") from exc
            raise
        users = answer.get("Users", [])
        attributes = users[0].get("Attributes", []) if users else []
        email = next((a.get("Value") for a in attributes if a.get("Name") == "email"), None)
        if not email:
            return None  # not cached: an address added later is found on the next call
        with self._lock:
            self._found[user_id] = (now, email)
            self._found.move_to_end(user_id)
            while len(self._found) > self._size:
                self._found.popitem(last=False)
        return email
