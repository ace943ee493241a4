"""The local stand-in payment provider: a subset of Stripe's PaymentIntents API, in memory.

Why one file of ~500 lines: it is one small server whose parts share one state (intents, refunds,
idempotency records, call counts) under one lock: the form parsing, the routes and Stripe's error
shapes are read together against Stripe's reference; split, each part would need the others.

It speaks what chalicelib/adapters/stripe_payments.py speaks, in Stripe's shapes (form-encoded
requests, JSON answers, `{"error": {"type", "code", "decline_code"?, "message", "param"?}}`):

    POST /v1/payment_intents                  create and confirm (confirm=true), manual or automatic capture
    POST /v1/payment_intents/{id}/capture     requires_capture -> succeeded
    POST /v1/payment_intents/{id}/cancel      requires_capture (or a declined intent) -> canceled
    POST /v1/refunds                          payment_intent=...: a full refund of a succeeded intent
    GET  /v1/payment_intents[/{id}]           Stripe's list shape, newest first (limit, starting_after)
    GET  /v1/refunds[/{id}]                   the same, optionally payment_intent=...

`Authorization: Bearer <key>` must carry the stand-in's key. `Idempotency-Key` works as Stripe's:
the same key with the same method, path and parameters answers the first answer again with
`Idempotent-Replayed: true`; with anything else, 400 `idempotency_error`. As at Stripe, only
requests that were executed are kept (not a 401, a parameter error or a 503).

Test tokens (`payment_method`): `pm_card_visa` is approved; `pm_card_chargeDeclined` and
`pm_card_chargeDeclinedInsufficientFunds` are declined (402 `card_error`, `decline_code`
`generic_decline` / `insufficient_funds`); `pm_card_unavailable` gets a 503 every time; any other
token a 400 `resource_missing`.

Outside Stripe's API, for tests and benchmarks (no key needed):
    GET  /_devstack/calls     calls per order: {"total", "orders": {order_id: {"create", "capture", ...}}}
    POST /_devstack/faults    {"unavailable_next": N}: the next N API calls answer 503
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["LOCAL_API_KEY", "TEST_TOKENS", "PaymentsStandIn", "Response"]

log = logging.getLogger("devstack.payments")

# The key the local stack puts into the PaymentsApiKeySecret secret (a Stripe-like test key).
LOCAL_API_KEY = "sk_test_storefront_local_stand_in"

APPROVED = "approved"
UNAVAILABLE = "unavailable"
# Test token -> APPROVED, UNAVAILABLE, or the decline_code and message of Stripe's decline.
TEST_TOKENS: Mapping[str, str | tuple[str, str]] = {
    "pm_card_visa": APPROVED,
    "pm_card_chargeDeclined": ("generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_unavailable": UNAVAILABLE,
}

MAX_BODY_BYTES = 1 << 20
MAX_AMOUNT = 99_999_999  # Stripe's limit: eight digits in the smallest unit
_ID_ALPHABET = string.ascii_letters + string.digits
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_INTENT_PATH = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)(?:/(capture|cancel))?$")
_REFUND_PATH = re.compile(r"^/v1/refunds/([A-Za-z0-9_]+)$")
_CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action",
               "processing")


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class _Refused(Exception):
    """An answer other than 200; `kept` says whether an idempotent repeat gets it again."""

    def __init__(self, status: int, error: dict[str, Any], *, kept: bool = False) -> None:
        super().__init__(error.get("message", ""))
        self.response = Response(status, {"error": error})
        self.kept = kept


def _invalid(message: str, *, code: str | None = None, param: str | None = None, status: int = 400,
             kept: bool = False, **extra: Any) -> _Refused:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return _Refused(status, {**error, **extra}, kept=kept)


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding: `a=1`, `metadata[k]=v` (a hash), `types[]=x` or `types[0]=x` (a list)."""
    params: dict[str, Any] = {}
    for key, value in pairs:
        name, bracket, rest = key.partition("[")
        if not bracket:
            if name in params:
                raise _invalid(f"Received the parameter {name} more than once.", code="parameter_invalid", param=name)
            params[name] = value
            continue
        if not rest.endswith("]") or "[" in rest:
            raise _invalid(f"Invalid parameter name: {key}", code="parameter_invalid", param=key)
        inner = rest[:-1]
        if inner == "" or inner.isdigit():
            target = params.setdefault(name, [])
            if not isinstance(target, list):
                raise _invalid(f"Invalid array: {name}", code="parameter_invalid", param=name)
            target.append(value)
        else:
            target = params.setdefault(name, {})
            if not isinstance(target, dict):
                raise _invalid(f"Invalid hash: {name}", code="parameter_invalid", param=name)
            target[inner] = value
    return params


def _only(params: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _invalid(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def _text(params: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(value, str):
        raise _invalid(f"Invalid string: {name}", code="parameter_invalid", param=name)
    return value


def _integer(value: str, name: str, *, low: int, high: int) -> int:
    if not re.fullmatch(r"-?[0-9]{1,12}", value):
        raise _invalid(f"Invalid integer: {value}", code="parameter_invalid_integer", param=name)
    number = int(value)
    if not low <= number <= high:
        raise _invalid(f"This value must be between {low} and {high}: {name}.", code="parameter_invalid_integer",
                       param=name)
    return number


class _Ledger:
    """The provider's state and its API, free of HTTP; one lock makes every request atomic."""

    def __init__(self, api_key: str, clock: Callable[[], float]) -> None:
        self.api_key = api_key
        self._clock = clock
        self._lock = threading.Lock()
        self._intents: dict[str, dict[str, Any]] = {}  # insertion order = creation order
        self._refunds: dict[str, dict[str, Any]] = {}
        self._refunded: set[str] = set()
        self._kept: dict[str, tuple[tuple[str, str, tuple[tuple[str, str], ...]], Response]] = {}
        self._calls: dict[str, Counter[str]] = {}
        self._unattributed = 0
        self.unavailable_next = 0

    # --- the entry point ---------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        with self._lock:
            try:
                if path.startswith("/_devstack/"):
                    return self._devstack(method, path, body)
                return self._api(method, path, parts.query, headers, body)
            except _Refused as refused:
                return refused.response

    def _api(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Response:
        operation = self._route(method, path)
        self._authenticate(headers.get("authorization"))
        if method == "GET":
            return Response(200, self._read(path, _form(parse_qsl(query, keep_blank_values=True))))
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise _invalid("The request body is not form-encoded (application/x-www-form-urlencoded).") from None
        params = _form(pairs)
        self._count(operation, path, params)
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            return Response(503, {"error": {"type": "api_error", "message": "The stand-in is unavailable "
                                            "(a fault set through /_devstack/faults)."}})
        key = headers.get("idempotency-key")
        request = (method, path, tuple(sorted(pairs)))
        if key is not None:
            if not 0 < len(key) <= 255:
                raise _invalid("Idempotency-Key must be 1 to 255 characters.", code="parameter_invalid")
            if key in self._kept:
                first, answer = self._kept[key]
                if first != request:
                    raise _Refused(400, {"type": "idempotency_error", "message": (
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.")})
                return Response(answer.status, answer.body, {**answer.headers, "Idempotent-Replayed": "true"})
        try:
            answer = Response(200, self._write(operation, path, params))
            kept = True
        except _Refused as refused:
            answer, kept = refused.response, refused.kept
        if key is not None and kept:
            self._kept[key] = (request, answer)
        return answer

    def _route(self, method: str, path: str) -> str:
        if method == "POST" and path == "/v1/payment_intents":
            return "create"
        if method == "POST" and path == "/v1/refunds":
            return "refund"
        intent = _INTENT_PATH.match(path)
        if method == "POST" and intent and intent.group(2):
            return intent.group(2)
        if method == "GET" and (path in ("/v1/payment_intents", "/v1/refunds") or intent and not intent.group(2)
                                or _REFUND_PATH.match(path)):
            return "read"
        raise _invalid(f"Unrecognized request URL ({method}: {path}). This stand-in speaks a subset of Stripe's "
                       "PaymentIntents API: see devstack/payments.py.", status=404)

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise _invalid("You did not provide an API key. Provide it in the Authorization header, using "
                           "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').", status=401)
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(key.strip().encode(), self.api_key.encode()):
            shown = key.strip()[-4:] if len(key.strip()) > 8 else ""
            raise _invalid(f"Invalid API Key provided: sk_****{shown}", status=401)

    def _count(self, operation: str, path: str, params: Mapping[str, Any]) -> None:
        order_id: str | None = None
        if operation == "create":
            metadata = params.get("metadata")
            order_id = metadata.get("order_id") if isinstance(metadata, dict) else None
        else:
            match = _INTENT_PATH.match(path)
            intent_id = match.group(1) if match else params.get("payment_intent")
            intent = self._intents.get(intent_id) if isinstance(intent_id, str) else None
            order_id = intent["metadata"].get("order_id") if intent else None
        if order_id is None:
            self._unattributed += 1
        else:
            self._calls.setdefault(order_id, Counter())[operation] += 1

    # --- writes ------------------------------------------------------------------------------

    def _write(self, operation: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "create":
            return self._create(params)
        if operation == "refund":
            return self._refund(params)
        match = _INTENT_PATH.match(path)
        assert match is not None
        intent = self._intents.get(match.group(1))
        if intent is None:
            raise _invalid(f"No such payment_intent: '{match.group(1)}'", code="resource_missing", param="intent",
                           status=404, kept=True)
        return self._capture(intent, params) if operation == "capture" else self._cancel(intent, params)

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, frozenset({"amount", "currency", "payment_method", "confirm", "capture_method", "metadata",
                                 "payment_method_types", "description"}))
        amount = _integer(_text(params, "amount") or "", "amount", low=1, high=MAX_AMOUNT)
        currency = _text(params, "currency") or ""
        if not _CURRENCY.match(currency):
            raise _invalid(f"Invalid currency: {currency}.", code="parameter_invalid", param="currency")
        token = _text(params, "payment_method") or ""
        if _text(params, "confirm", required=False) != "true":
            raise _invalid("The stand-in creates confirmed intents only: send confirm=true.",
                           code="parameter_invalid", param="confirm")
        capture_method = _text(params, "capture_method", required=False) or "automatic"
        if capture_method not in ("manual", "automatic", "automatic_async"):
            raise _invalid("Invalid capture_method: must be one of automatic, automatic_async, or manual",
                           code="parameter_invalid", param="capture_method")
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            raise _invalid("Invalid hash", code="parameter_invalid", param="metadata")
        if not metadata.get("order_id"):
            raise _invalid("The stand-in records intents by order: send metadata[order_id].",
                           code="parameter_missing", param="metadata[order_id]")
        types = params.get("payment_method_types", ["card"])
        if not isinstance(types, list) or "card" not in types:
            raise _invalid("The stand-in takes cards only: payment_method_types must include card.",
                           code="parameter_invalid", param="payment_method_types")
        outcome = TEST_TOKENS.get(token)
        if outcome is None:
            raise _invalid(f"No such PaymentMethod: '{token}'", code="resource_missing", param="payment_method")
        if outcome == UNAVAILABLE:
            raise _Refused(503, {"type": "api_error", "message": f"{token}: the provider is unavailable."})
        intent_id = _new_id("pi_")
        intent: dict[str, Any] = {
            "id": intent_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "capture_method": capture_method, "confirmation_method": "automatic",
            "canceled_at": None, "cancellation_reason": None, "created": int(self._clock()),
            "currency": currency.lower(), "description": params.get("description"), "last_payment_error": None,
            "latest_charge": _new_id("ch_"), "livemode": False, "metadata": dict(metadata),
            "payment_method": _new_id("pm_"), "payment_method_types": list(types), "status": "requires_capture",
        }
        self._intents[intent_id] = intent
        if isinstance(outcome, tuple):
            decline_code, message = outcome
            error = {"type": "card_error", "code": "card_declined", "decline_code": decline_code,
                     "message": message, "charge": intent["latest_charge"]}
            intent.update(status="requires_payment_method", payment_method=None,
                          last_payment_error={k: v for k, v in error.items() if k != "charge"})
            raise _Refused(402, {**error, "payment_intent": dict(intent)}, kept=True)
        if capture_method == "manual":
            intent["amount_capturable"] = amount
        else:
            intent.update(status="succeeded", amount_received=amount)
        return dict(intent)

    def _capture(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        _only(params, frozenset())
        if intent["status"] != "requires_capture":
            raise self._unexpected_state(intent, (
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}. Only a "
                "PaymentIntent with one of the following statuses may be captured: requires_capture."))
        intent.update(status="succeeded", amount_received=intent["amount"], amount_capturable=0)
        return dict(intent)

    def _cancel(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        _only(params, frozenset({"cancellation_reason"}))
        reason = _text(params, "cancellation_reason", required=False)
        if reason is not None and reason not in _CANCELLATION_REASONS:
            raise _invalid(f"Invalid cancellation_reason: must be one of {', '.join(sorted(_CANCELLATION_REASONS))}",
                           code="parameter_invalid", param="cancellation_reason")
        if intent["status"] not in _CANCELABLE:
            raise self._unexpected_state(intent, (
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                f"PaymentIntent with one of the following statuses may be canceled: {', '.join(_CANCELABLE)}."))
        intent.update(status="canceled", amount_capturable=0, canceled_at=int(self._clock()),
                      cancellation_reason=reason)
        return dict(intent)

    def _refund(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, frozenset({"payment_intent", "reason", "metadata"}))
        intent_id = _text(params, "payment_intent") or ""
        intent = self._intents.get(intent_id)
        if intent is None:
            raise _invalid(f"No such payment_intent: '{intent_id}'", code="resource_missing", param="payment_intent",
                           kept=True)
        if intent_id in self._refunded:
            raise _invalid(f"Charge {intent['latest_charge']} has already been refunded.",
                           code="charge_already_refunded", kept=True)
        if intent["status"] != "succeeded":
            raise self._unexpected_state(intent, (
                f"This PaymentIntent does not have a successful charge to refund (its status is {intent['status']})."))
        metadata = params.get("metadata", {})
        refund = {
            "id": _new_id("re_"), "object": "refund", "amount": intent["amount"], "charge": intent["latest_charge"],
            "created": int(self._clock()), "currency": intent["currency"],
            "metadata": dict(metadata) if isinstance(metadata, dict) else {}, "payment_intent": intent_id,
            "reason": params.get("reason"), "status": "succeeded",
        }
        self._refunds[refund["id"]] = refund
        self._refunded.add(intent_id)
        return dict(refund)

    @staticmethod
    def _unexpected_state(intent: Mapping[str, Any], message: str) -> _Refused:
        return _invalid(message, code="payment_intent_unexpected_state", kept=True, payment_intent=dict(intent))

    # --- reads -------------------------------------------------------------------------------

    def _read(self, path: str, query: dict[str, Any]) -> dict[str, Any]:
        intent = _INTENT_PATH.match(path)
        if intent:
            _only(query, frozenset())
            found = self._intents.get(intent.group(1))
            if found is None:
                raise _invalid(f"No such payment_intent: '{intent.group(1)}'", code="resource_missing",
                               param="intent", status=404)
            return dict(found)
        refund = _REFUND_PATH.match(path)
        if refund:
            _only(query, frozenset())
            found = self._refunds.get(refund.group(1))
            if found is None:
                raise _invalid(f"No such refund: '{refund.group(1)}'", code="resource_missing", param="id",
                               status=404)
            return dict(found)
        if path == "/v1/refunds":
            _only(query, frozenset({"limit", "starting_after", "payment_intent"}))
            wanted = _text(query, "payment_intent", required=False)
            items = [r for r in self._refunds.values() if wanted is None or r["payment_intent"] == wanted]
            return self._page(path, items, query, "refund")
        _only(query, frozenset({"limit", "starting_after"}))
        return self._page(path, list(self._intents.values()), query, "payment_intent")

    @staticmethod
    def _page(url: str, items: list[dict[str, Any]], query: Mapping[str, Any], kind: str) -> dict[str, Any]:
        newest_first = items[::-1]
        limit = _integer(_text(query, "limit", required=False) or "10", "limit", low=1, high=100)
        after = _text(query, "starting_after", required=False)
        if after is not None:
            ids = [item["id"] for item in newest_first]
            if after not in ids:
                raise _invalid(f"No such {kind}: '{after}'", code="resource_missing", param="starting_after")
            newest_first = newest_first[ids.index(after) + 1:]
        return {"object": "list", "url": url, "has_more": len(newest_first) > limit,
                "data": [dict(item) for item in newest_first[:limit]]}

    # --- the stand-in's own controls -----------------------------------------------------------

    def _devstack(self, method: str, path: str, body: bytes) -> Response:
        if method == "GET" and path == "/_devstack/calls":
            orders = {order_id: {**counts, "total": counts.total()} for order_id, counts in self._calls.items()}
            total = sum(c["total"] for c in orders.values()) + self._unattributed
            return Response(200, {"total": total, "unattributed": self._unattributed, "orders": orders})
        if path == "/_devstack/faults" and method == "GET":
            return Response(200, {"unavailable_next": self.unavailable_next})
        if path == "/_devstack/faults" and method == "POST":
            try:
                wanted = json.loads(body or b"{}")
            except ValueError:
                return _message(400, "the body is not JSON: send {\"unavailable_next\": N}")
            if not isinstance(wanted, dict) or set(wanted) - {"unavailable_next"}:
                return _message(400, "the body takes one field: {\"unavailable_next\": N}")
            count = wanted.get("unavailable_next", 0)
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 10_000:
                return _message(400, "unavailable_next must be an integer 0..10000")
            self.unavailable_next = count
            return Response(200, {"unavailable_next": count})
        return _message(404, f"no {method} {path}: the stand-in's own paths are GET /_devstack/calls and "
                             "GET or POST /_devstack/faults")


def _message(status: int, message: str) -> Response:
    return Response(status, {"error": {"type": "invalid_request_error", "message": message}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark's burst of saga steps must not overflow the default 5


class PaymentsStandIn:
    """The stand-in served over HTTP on `host:port` (0: a free port) from threads of this process."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_key: str = LOCAL_API_KEY,
                 clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self._ledger = ledger = _Ledger(api_key, clock)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the adapter's connection pool expects

            def _serve(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY_BYTES:
                    answer = _message(413 if length > MAX_BODY_BYTES else 400,
                                      f"Content-Length must be 0..{MAX_BODY_BYTES}")
                    self.close_connection = True
                else:
                    body = self.rfile.read(length)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    try:
                        answer = ledger.handle(self.command, self.path, headers, body)
                    except Exception:  # a bug of the stand-in must not kill the thread silently
                        log.exception("payments stand-in failed on %s %s", self.command, self.path)
                        answer = Response(500, {"error": {"type": "api_error", "message": "stand-in error"}})
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", _new_id("req_"))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self._server = _Server((host, port), Handler)
        # A short poll: stop() waits for it (the default half second, per stand-in of a test).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="payments",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> PaymentsStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
