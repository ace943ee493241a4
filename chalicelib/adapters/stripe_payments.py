"""The payment provider: a subset of Stripe's PaymentIntents API over HTTPS (urllib3).

One call per saga step, each with the step's `Idempotency-Key`, so a retried or redriven step is
done once at Stripe. No retries here: the state machine retries what may be retried (a
PaymentProviderUnavailable), with its backoff. The API key is read from Secrets Manager once per
container, on the first call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.payments import PaymentDeclined, PaymentProviderUnavailable, PaymentRefused

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["StripePayments"]

# Secrets Manager's answers that no retry changes: the secret is missing, empty, or not ours to read.
_SECRET_MISCONFIGURED = frozenset({"ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure",
                                   "InvalidRequestException", "InvalidParameterException"})


class StripePayments:
    """PaymentProvider (services/order_saga.py) over Stripe's PaymentIntents.

    `secrets` gives the Secrets Manager client (made on first use); `secret_id` is the ARN or name
    of the secret whose SecretString is the API key (`sk_live_...`); `api_url` is Stripe's
    (`https://api.stripe.com`, config.Settings.payments_api_url) or a stand-in's. A call waits at most
    `connect_timeout` to connect and `read_timeout` for each read of the answer.
    """

    def __init__(self, secrets: Callable[[], SecretsManagerClient], secret_id: str, *,
                 api_url: str, connect_timeout: float = 3.0, read_timeout: float = 10.0) -> None:
        self._secrets = secrets
        self._secret_id = secret_id
        self._api_url = api_url.rstrip("/")
        self._key: str | None = None
        self._key_lock = threading.Lock()
        # Pooled connections outlive the invocation: the next call of this container skips the TLS handshake.
        self._http = urllib3.PoolManager(
            num_pools=2, maxsize=4, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))

    # --- PaymentProvider ---------------------------------------------------------------------

    def authorize(self, *, order_id: str, amount_cents: int, currency: str, payment_method: str,
                  idempotency_key: str) -> str:
        intent = self._post("/v1/payment_intents", {
            "amount": amount_cents, "currency": currency.lower(), "payment_method": payment_method,
            "payment_method_types[]": "card", "confirm": "true", "capture_method": "manual",
            "metadata[order_id]": order_id,
        }, idempotency_key)
        if intent.get("status") != "requires_capture":
            # requires_action (3-D Secure) cannot be completed by a saga with no buyer at hand.
            raise PaymentDeclined("card_declined", f"payment {intent.get('id')} is {intent.get('status')}, "
                                                   "not authorized")
        return str(intent["id"])

    def capture(self, reference: str, *, idempotency_key: str) -> None:
        self._post(f"/v1/payment_intents/{quote(reference, safe='')}/capture", {}, idempotency_key,
                   already_done=("payment_intent_unexpected_state", "succeeded"))

    def void(self, reference: str, *, idempotency_key: str) -> None:
        self._post(f"/v1/payment_intents/{quote(reference, safe='')}/cancel", {}, idempotency_key,
                   already_done=("payment_intent_unexpected_state", "canceled"))

    def refund(self, reference: str, *, idempotency_key: str) -> None:
        self._post("/v1/refunds", {"payment_intent": reference}, idempotency_key,
                   already_done=("charge_already_refunded", None))

    # --- HTTP --------------------------------------------------------------------------------

    def _post(self, path: str, params: Mapping[str, str | int], idempotency_key: str, *,
              already_done: tuple[str, str | None] | None = None) -> dict[str, Any]:
        """POST form-encoded `params`; the answer's JSON. `already_done` = (error code, intent status):
        Stripe's refusal that means this call was made before, answered as a success."""
        key = self._api_key()
        try:
            response = self._http.request(
                "POST", self._api_url + path, body=urlencode(params),
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key,
                         "Content-Type": "application/x-www-form-urlencoded"})
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused or reset connections, TLS
            raise PaymentProviderUnavailable(f"the payment provider did not answer {path}: {exc}") from exc
        status = response.status
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PaymentProviderUnavailable(f"the payment provider answered {path} with {status} and no JSON")
        if status == 200:
            return body
        error = body.get("error")
        if not isinstance(error, dict):
            error = {}
        message = str(error.get("message") or f"HTTP {status}")
        if status == 429 or status == 409 or status >= 500:  # 409: the same key's first request is still running
            raise PaymentProviderUnavailable(f"the payment provider answered {status}: {message}")
        if status == 402 and error.get("type") == "card_error":
            raise PaymentDeclined(str(error.get("decline_code") or error.get("code") or "card_declined"), message)
        if status == 401:
            self._forget_key()  # the operator may have put a new key since: read it again next time
        if already_done is not None and error.get("code") == already_done[0]:
            intent = error.get("payment_intent")
            wanted_status = already_done[1]
            if wanted_status is None or isinstance(intent, dict) and intent.get("status") == wanted_status:
                return body
        raise PaymentRefused(f"the payment provider refused {path} ({status} {error.get('code') or ''}): {message}")

    # --- the API key -------------------------------------------------------------------------

    def _api_key(self) -> str:
        key = self._key
        if key is not None:
            return key
        with self._key_lock:  # one read per container, however many threads ask at once
            if self._key is None:
                self._key = self._read_key()
            return self._key

    def _forget_key(self) -> None:
        with self._key_lock:
            self._key = None

    def _read_key(self) -> str:
        try:
            secret = self._secrets().get_secret_value(SecretId=self._secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _SECRET_MISCONFIGURED:
                raise PaymentRefused(f"the payments API key secret {self._secret_id} cannot be read ({code})") from exc
            raise PaymentProviderUnavailable(f"the payments API key could not be read: {code}") from exc
        except BotoCoreError as exc:
            raise PaymentProviderUnavailable(f"the payments API key could not be read: {exc}") from exc
        key = secret.get("SecretString", "").strip()
        if not key:
            raise PaymentRefused(f"the payments API key secret {self._secret_id} holds no SecretString")
        return key
