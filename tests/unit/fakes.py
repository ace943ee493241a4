"""In-memory stand-ins for the service ports, honouring the same contracts as the adapters, and
`fake_clients()`, which wires them into the `Clients` that `bootstrap` takes.

`InMemoryProductRepository` and `InMemoryIdempotencyStore` share one record table, as the pynamodb
pair shares the idempotency table: `add(..., remember=...)` writes both or neither.
`InMemoryOrderRepository` reads and writes the products of an `InMemoryProductRepository`, as the
pynamodb adapter's one transaction writes the products table and the orders table together.
`InMemoryBucket` is any of the app's buckets, as `S3Bucket` is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

from chalicelib.adapters.tracing import NoTracer
from chalicelib.bootstrap import Clients
from chalicelib.config import Settings, load_settings
from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable, KeyAlreadyUsed, Unauthenticated
from chalicelib.domain.identity import Caller
from chalicelib.domain.idempotency import IdempotencyRecord
from chalicelib.domain.ids import new_id
from chalicelib.domain.imports import FileUnavailable
from chalicelib.domain.orders import (
    QUEUED, RESERVED, HistoryEntry, Offer, Order, OrderPlaced, OrderStatus, WriteOutcome,
)
from chalicelib.domain.paging import Page
from chalicelib.domain.payments import (
    Payment, PaymentDeclined, PaymentProviderUnavailable, PaymentRefused, PaymentStatus,
)
from chalicelib.domain.products import Product
from chalicelib.domain.storage import ObjectInfo, StoredObject, UploadForm
from tests.unit.cleanup_fakes import (
    InMemoryCleanupImages, InMemoryCursors, InMemoryExpiringRecords, InMemoryProductLookup,
)
from tests.unit.event_fakes import (
    InMemoryChangeStream, InMemoryEventBus, InMemoryOnce, InMemorySalesProjection, InMemorySalesSources,
)
from tests.unit.image_fakes import InMemoryImageRepository
from tests.unit.import_fakes import InMemoryImportJobs, InMemoryImportTopics, InMemoryImportWriter

__all__ = ["FakeClock", "SequentialIds", "InMemoryIdempotencyStore", "InMemoryProductRepository",
           "InMemoryOrderRepository", "InMemoryOrderQueue", "InMemoryOrderSagas", "SagaStart", "FakePaymentProvider",
           "InMemoryMailer", "SentMail", "InMemoryDirectory", "InMemoryBucket", "InMemoryTokenVerifier",
           "InMemoryTracer", "Unavailable", "fake_settings", "fake_clients"]

_MONEY_HELD = (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED)

_SETTINGS = {
    "USER_POOL": "us-east-1_unit", "USER_POOL_CLIENT": "unit-client", "PRODUCTS_TABLE": "products",
    "IDEMPOTENCY_TABLE": "idempotency", "TRACING": "off",
}


def fake_settings(**changes: Any) -> Settings:
    """Settings as `load_settings` reads them from a minimal environment, with `changes` applied
    (`import_chunk_rows=3`, `cleanup_max_items=3`, ...)."""
    return dataclasses.replace(load_settings(_SETTINGS), **changes)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class SequentialIds:
    """Real ULIDs, one millisecond apart, so creation order is id order as in production."""

    def __init__(self, start_ms: int = 1_795_000_000_000) -> None:
        self._next_ms = start_ms
        self.issued: list[str] = []

    def __call__(self) -> str:
        value = new_id(now_ms=self._next_ms, randomness=bytes(10))
        self._next_ms += 1
        self.issued.append(value)
        return value


class InMemoryIdempotencyStore:
    def __init__(self) -> None:
        self.records: dict[str, IdempotencyRecord] = {}

    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        record = self.records.get(key)
        if record is None or record.expires_at <= now:
            return None
        return record


class InMemoryProductRepository:
    def __init__(self, idempotency: InMemoryIdempotencyStore, clock: FakeClock) -> None:
        self.items: dict[str, Product] = {}
        self._idempotency = idempotency
        self._clock = clock  # the pynamodb adapter compares expiry with the wall clock

    def get(self, product_id: str) -> Product | None:
        return self.items.get(product_id)

    def add(self, product: Product, remember: IdempotencyRecord | None = None) -> None:
        if product.id in self.items:
            raise ConditionNotMet(product.id)
        if remember is not None:
            # Same boundary as InMemoryIdempotencyStore.get: live strictly before expires_at.
            taken = self._idempotency.get(remember.key, self._clock())
            if taken is not None:
                raise KeyAlreadyUsed(remember.key)
            self._idempotency.records[remember.key] = remember
        self.items[product.id] = product

    def update(self, product_id: str, *, owner: str, expected_version: int,
               changes: dict[str, Any], now: datetime) -> Product:
        current = self._matching(product_id, owner, expected_version)
        changed = dataclasses.replace(current, **changes, version=current.version + 1, updated_at=now)
        self.items[product_id] = changed
        return changed

    def delete(self, product_id: str, *, owner: str, expected_version: int | None) -> None:
        self._matching(product_id, owner, expected_version)
        del self.items[product_id]

    def list(self, *, owner: str | None, limit: int, after: str | None) -> Page[Product]:
        newest_first = sorted(
            (p for p in self.items.values() if owner is None or p.owner == owner),
            key=lambda p: p.id, reverse=True)
        if after is not None:
            newest_first = [p for p in newest_first if p.id < after]
        if len(newest_first) > limit:
            return Page(newest_first[:limit], last_id=newest_first[limit - 1].id)
        return Page(newest_first, last_id=None)

    def _matching(self, product_id: str, owner: str, expected_version: int | None) -> Product:
        current = self.items.get(product_id)
        if (current is None or current.owner != owner
                or (expected_version is not None and current.version != expected_version)):
            raise ConditionNotMet(product_id)
        return current


class InMemoryOrderRepository:
    """Orders, and the stock of `products`, under exactly the conditions of the pynamodb adapter
    (adapters/orders_table.py): each method is one conditional write, applied whole or not at all.

    `offer_reads` counts single reads and `batch_reads` batch reads of the products' offers.
    """

    def __init__(self, products: InMemoryProductRepository, idempotency: InMemoryIdempotencyStore,
                 clock: FakeClock) -> None:
        self.items: dict[str, Order] = {}
        self.products = products
        self.batch_reads = 0
        self.offer_reads = 0
        self._idempotency = idempotency
        self._clock = clock

    def add(self, order: Order, remember: IdempotencyRecord | None = None) -> None:
        if order.id in self.items:
            raise ConditionNotMet(order.id)
        if remember is not None:
            if self._idempotency.get(remember.key, self._clock()) is not None:
                raise KeyAlreadyUsed(remember.key)
            self._idempotency.records[remember.key] = remember
        # What the adapter stores of a new order: no amount yet, nothing held, its first entry.
        self.items[order.id] = dataclasses.replace(
            order, reason=None, amount_cents=None, currency=None, stock_held=False, notified=False,
            history=(HistoryEntry(order.status, order.created_at),))

    def remove_queued(self, order_id: str) -> bool:
        order = self.items.get(order_id)
        if order is None or order.status != QUEUED:
            return False
        del self.items[order_id]
        return True

    def get(self, order_id: str) -> Order | None:
        return self.items.get(order_id)

    def list_for(self, buyer: str, *, status: OrderStatus | None, limit: int, after: str | None) -> Page[Order]:
        newest_first = sorted((o for o in self.items.values()
                               if o.buyer == buyer and (status is None or o.status == status)),
                              key=lambda o: o.id, reverse=True)
        if after is not None:
            newest_first = [o for o in newest_first if o.id < after]
        if len(newest_first) > limit:
            return Page(newest_first[:limit], last_id=newest_first[limit - 1].id)
        return Page(newest_first, last_id=None)

    def offer_of(self, product_id: str) -> Offer | None:
        self.offer_reads += 1
        return self._offer(product_id)

    def offers_of(self, product_ids: Collection[str]) -> dict[str, Offer | None]:
        self.batch_reads += 1
        return {product_id: self._offer(product_id) for product_id in product_ids}

    def _offer(self, product_id: str) -> Offer | None:
        product = self.products.get(product_id)
        return None if product is None else Offer(product.stock, product.price_cents, product.currency,
                                                       product.owner, product.name)

    def reserve(self, placed: OrderPlaced, offer: Offer, now: datetime) -> WriteOutcome:
        order = self.items.get(placed.order_id)
        # The transaction reports the order's condition first (the adapter reads codes[1] first).
        if order is None or order.status != QUEUED:
            return WriteOutcome.ALREADY_APPLIED
        product = self.products.get(placed.product_id)
        if (product is None or product.stock < placed.quantity or product.price_cents != offer.price_cents
                or product.currency != offer.currency):
            return WriteOutcome.STOCK_CHANGED
        self._change_stock(product, -placed.quantity, now)
        self.items[order.id] = dataclasses.replace(
            self._moved(order, RESERVED, now), amount_cents=offer.amount_for(placed.quantity),
            currency=offer.currency, stock_held=True, seller=offer.seller, product_name=offer.name)
        return WriteOutcome.APPLIED

    def move(self, order_id: str, buyer: str, *, source: OrderStatus, to: OrderStatus,
             now: datetime) -> WriteOutcome:
        order = self.items.get(order_id)
        if order is None or order.status != source:
            return WriteOutcome.ALREADY_APPLIED
        self.items[order_id] = self._moved(order, to, now)
        return WriteOutcome.APPLIED

    def end(self, order_id: str, buyer: str, *, expected: Collection[OrderStatus], status: OrderStatus,
            reason: str, now: datetime) -> WriteOutcome:
        order = self.items.get(order_id)
        if (order is None or order.status not in expected or order.stock_held
                or order.payment.status in _MONEY_HELD):
            return WriteOutcome.ALREADY_APPLIED
        self.items[order_id] = self._moved(order, status, now, reason)
        return WriteOutcome.APPLIED

    def record_payment(self, order_id: str, expected: PaymentStatus, payment: Payment,
                       now: datetime) -> WriteOutcome:
        order = self.items.get(order_id)
        # (The adapter's update would create an absent order's item when `expected` is NONE; no
        # step calls it for an order it did not read, so the fake simply refuses.)
        if order is None or order.payment.status != expected:
            return WriteOutcome.ALREADY_APPLIED
        # Reference and failure are set when given, kept otherwise, as the adapter's SET actions.
        recorded = Payment(payment.status, payment.reference or order.payment.reference,
                           payment.failure or order.payment.failure)
        self.items[order_id] = dataclasses.replace(order, payment=recorded, updated_at=now)
        return WriteOutcome.APPLIED

    def restock(self, order: Order, now: datetime) -> WriteOutcome:
        current = self.items.get(order.id)
        if current is None or not current.stock_held:
            return WriteOutcome.ALREADY_APPLIED
        product = self.products.get(order.product_id)
        if product is not None:  # a deleted product's units went with it: only the order changes
            self._change_stock(product, order.quantity, now)
        self.items[order.id] = dataclasses.replace(current, stock_held=False, updated_at=now)
        return WriteOutcome.APPLIED

    def mark_notified(self, order_id: str, now: datetime) -> WriteOutcome:
        order = self.items.get(order_id)
        if order is None or order.notified:
            return WriteOutcome.ALREADY_APPLIED
        self.items[order_id] = dataclasses.replace(order, notified=True, updated_at=now)
        return WriteOutcome.APPLIED

    def _change_stock(self, product: Product, delta: int, now: datetime) -> None:
        # As the adapter's update: any version, and a stock change is a change (version + 1).
        self.products.items[product.id] = dataclasses.replace(
            product, stock=product.stock + delta, version=product.version + 1, updated_at=now)

    @staticmethod
    def _moved(order: Order, to: OrderStatus, now: datetime, reason: str | None = None) -> Order:
        changes: dict[str, Any] = {"status": to, "updated_at": now,
                                   "history": (*order.history, HistoryEntry(to, now, reason))}
        if reason is not None:
            changes["reason"] = reason
        return dataclasses.replace(order, **changes)


class InMemoryOrderQueue:
    """What was sent, in order; `failing` makes every send raise as the SQS adapter does."""

    def __init__(self) -> None:
        self.sent: list[tuple[OrderPlaced, str | None]] = []
        self.failing = False

    def send(self, placed: OrderPlaced, trace_header: str | None) -> None:
        if self.failing:
            raise DependencyUnavailable("the order could not be queued: SQS is down")
        self.sent.append((placed, trace_header))


@dataclasses.dataclass(frozen=True)
class SagaStart:
    name: str  # the execution's name: the order id, or "<order id>-cancel"
    input: dict[str, Any]
    trace_header: str | None


class InMemoryOrderSagas:
    """Started executions by name, as Step Functions keeps them: a second start of a name is a
    no-op (`start_calls` still counts it). `pending` is what no runner has run yet
    (tests/unit/saga_runner.py takes from it); `failing` makes every start raise as the adapter does."""

    def __init__(self) -> None:
        self.started: dict[str, SagaStart] = {}
        self.pending: list[SagaStart] = []
        self.start_calls = 0
        self.failing = False

    def start(self, order_id: str, trace_header: str | None) -> None:
        self._start(SagaStart(order_id, {"order_id": order_id}, trace_header))

    def start_cancellation(self, order_id: str, trace_header: str | None) -> None:
        self._start(SagaStart(f"{order_id}-cancel", {"order_id": order_id, "action": "cancel"}, trace_header))

    def _start(self, start: SagaStart) -> None:
        self.start_calls += 1
        if self.failing:
            raise DependencyUnavailable(f"the saga of {start.name} could not be started: Step Functions is down")
        if start.name in self.started:
            return
        self.started[start.name] = start
        self.pending.append(start)


@dataclasses.dataclass
class PaymentIntent:
    reference: str
    order_id: str
    amount_cents: int
    currency: str
    payment_method: str
    status: str  # Stripe's: requires_capture, succeeded, canceled, requires_payment_method; and refunded


class FakePaymentProvider:
    """The provider as the Stripe adapter presents it, with Stripe's test tokens (API.md, Payments).

    Idempotent by key, as Stripe is: a repeated key gets the first answer again (a decline too)
    and does nothing more; an unavailable answer is not stored, so a retry is a new try.
    `pm_card_unavailable` is unavailable every time; `unavailable_next` makes the next that many
    calls (any token) unavailable before they reach the provider, `lose_next` makes the next that
    many calls take effect and then answer unavailable (the answer lost on the way back).
    Per order: `calls` counts the calls the provider acted on (one per idempotency key; a decline
    is one), `requests` every request (replays and unavailable answers too), `unavailable` the
    requests answered unavailable. `captures`, `voids` and `refunds` list the references each was
    done to.
    """

    APPROVED = "pm_card_visa"
    DECLINES = {"pm_card_chargeDeclined": "card_declined",
                "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds"}
    UNAVAILABLE = "pm_card_unavailable"

    def __init__(self) -> None:
        self.intents: dict[str, PaymentIntent] = {}
        self.calls: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.unavailable: Counter[str] = Counter()
        self.captures: list[str] = []
        self.voids: list[str] = []
        self.refunds: list[str] = []
        self.unavailable_next = 0
        self.lose_next = 0
        self._answers: dict[str, tuple[tuple[Any, ...], Any]] = {}

    def authorize(self, *, order_id: str, amount_cents: int, currency: str, payment_method: str,
                  idempotency_key: str) -> str:
        def create() -> str:
            if payment_method == self.UNAVAILABLE:
                raise PaymentProviderUnavailable("503 from the payment provider")
            reference = f"pi_{len(self.intents) + 1:06d}"
            declined = self.DECLINES.get(payment_method)
            if declined is None and payment_method != self.APPROVED:
                declined = "card_declined"  # an unknown test token: a generic decline
            self.intents[reference] = PaymentIntent(reference, order_id, amount_cents, currency, payment_method,
                                                    "requires_payment_method" if declined else "requires_capture")
            if declined:
                raise PaymentDeclined(declined)
            return reference

        answer: str = self._call(order_id, idempotency_key, ("authorize", order_id, amount_cents, currency,
                                                              payment_method), create)
        return answer

    def capture(self, reference: str, *, idempotency_key: str) -> None:
        self._change(reference, idempotency_key, "capture", "requires_capture", "succeeded", self.captures)

    def void(self, reference: str, *, idempotency_key: str) -> None:
        self._change(reference, idempotency_key, "void", "requires_capture", "canceled", self.voids)

    def refund(self, reference: str, *, idempotency_key: str) -> None:
        self._change(reference, idempotency_key, "refund", "succeeded", "refunded", self.refunds)

    def order_ids_with(self, status: str) -> list[str]:
        return [intent.order_id for intent in self.intents.values() if intent.status == status]

    def _change(self, reference: str, key: str, operation: str, source: str, to: str, done: list[str]) -> None:
        intent = self.intents.get(reference)

        def change() -> None:
            if intent is None:
                raise PaymentRefused(f"no such payment intent: {reference}")
            if intent.status != source:
                raise PaymentRefused(f"cannot {operation} a payment intent that is {intent.status}")
            intent.status = to
            done.append(reference)

        self._call(intent.order_id if intent else "?", key, (operation, reference), change)

    def _call(self, order_id: str, key: str, request: tuple[Any, ...], act: Any) -> Any:
        self.requests[order_id] += 1
        if self.unavailable_next:
            self.unavailable_next -= 1
            self.unavailable[order_id] += 1
            raise PaymentProviderUnavailable("503 from the payment provider")
        if key in self._answers:
            first_request, answer = self._answers[key]
            if first_request != request:
                raise PaymentRefused(f"idempotency key {key} was used with other parameters")
        else:
            try:
                answer = ("ok", act())
            except PaymentProviderUnavailable:
                self.unavailable[order_id] += 1
                raise
            except (PaymentDeclined, PaymentRefused) as error:
                answer = ("error", error)
            self._answers[key] = (request, answer)
            self.calls[order_id] += 1
        if self.lose_next:
            self.lose_next -= 1
            self.unavailable[order_id] += 1
            raise PaymentProviderUnavailable("read timeout: the answer was lost")
        kind, value = answer
        if kind == "error":
            raise value
        return value


@dataclasses.dataclass(frozen=True)
class SentMail:
    to: tuple[str, ...]
    subject: str
    text: str


class InMemoryMailer:
    """Keeps what was sent, in order; `failing` makes every send raise as the SES adapter does."""

    def __init__(self) -> None:
        self.sent: list[SentMail] = []
        self.failing = False

    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        if self.failing:
            raise DependencyUnavailable("SES is throttling")
        self.sent.append(SentMail(tuple(to), subject, text))


class InMemoryDirectory:
    """The user pool's `email` attribute by `sub`."""

    def __init__(self, emails: dict[str, str] | None = None) -> None:
        self.emails = dict(emails or {})

    def email_of(self, user_id: str) -> str | None:
        return self.emails.get(user_id)


class Unavailable:
    """Set as a fake's `failing` to make its calls raise as an adapter does for throttling."""

    def __init__(self, what: str) -> None:
        self.what = what

    def check(self) -> None:
        raise DependencyUnavailable(f"{self.what} is throttling")


_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class InMemoryBucket:
    """One bucket, as `S3Bucket` serves it to every port (uploads, media, imports, the cleanup).

    `objects` maps a key to (bytes, content type); `store` is a client's upload (not a port
    call), `put` the app's. `reads` and `forms` record the ranged reads and the presigned POSTs;
    `block_size` is small, so records cross block boundaries; `failing` makes every call raise.
    """

    def __init__(self, name: str = "bucket", *, clock: FakeClock | None = None, block_size: int = 7) -> None:
        self.name = name
        self.objects: dict[str, tuple[bytes, str | None]] = {}
        self.modified: dict[str, datetime] = {}
        self.forms: list[dict[str, Any]] = []
        self.reads: list[tuple[str, int | None, int | None]] = []
        self.puts = 0
        self.lists = 0
        self.block_size = block_size
        self.failing: Unavailable | None = None
        self._clock = clock

    # -- what a test does to the bucket ------------------------------------------------------------

    def store(self, key: str, data: bytes = b"", content_type: str | None = None, *,
              at: datetime | None = None) -> str:
        """Upload `data` under `key` as a client would (last modified `at`, or now); the key."""
        self.objects[key] = (data, content_type)
        self.modified[key] = at or (self._clock() if self._clock is not None else _EPOCH)
        return key

    def etag(self, key: str) -> str:
        return '"' + hashlib.md5(self.objects[key][0]).hexdigest() + '"'

    # -- the ports -------------------------------------------------------------------------------

    def presigned_post(self, key: str, *, content_type: str, max_bytes: int, expires_in: int) -> UploadForm:
        self._check()
        self.forms.append({"key": key, "content_type": content_type, "max_bytes": max_bytes,
                           "expires_in": expires_in})
        return UploadForm(url=f"https://{self.name}.example/", fields={"key": key, "Content-Type": content_type})

    def url(self, key: str) -> str:
        return f"https://{self.name}.example/{key}?signed"

    def stat(self, key: str) -> ObjectInfo | None:
        self._check()
        if key not in self.objects:
            return None
        data, content_type = self.objects[key]
        return ObjectInfo(len(data), self.etag(key), content_type)

    def open(self, key: str) -> tuple[ObjectInfo, BinaryIO] | None:
        info = self.stat(key)
        return None if info is None else (info, io.BytesIO(self.objects[key][0]))

    def read(self, key: str, etag: str, start: int | None = None, end: int | None = None) -> Iterator[bytes]:
        self._check()
        if key not in self.objects:
            raise FileUnavailable("the uploaded file no longer exists")
        if self.etag(key) != etag:
            raise FileUnavailable("the uploaded file was replaced during the import")
        self.reads.append((key, start, end))
        data = self.objects[key][0]
        body = data[start:end] if start is not None else data
        for at in range(0, len(body), self.block_size):
            yield body[at:at + self.block_size]

    def list(self, prefix: str, start_after: str | None, limit: int) -> tuple[list[StoredObject], bool]:
        self._check()
        self.lists += 1
        keys = sorted(k for k in self.objects if k.startswith(prefix) and (start_after is None or k > start_after))
        return [StoredObject(k, self.modified[k]) for k in keys[:limit]], len(keys) > limit

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        self.puts += 1
        self.store(key, data, content_type)

    def delete(self, keys: Sequence[str]) -> None:
        self._check()
        for key in keys:
            self.objects.pop(key, None)
            self.modified.pop(key, None)

    def _check(self) -> None:
        if self.failing is not None:
            self.failing.check()


class InMemoryTokenVerifier:
    """Knows the tokens in `tokens`; any other is not a token of the pool."""

    def __init__(self, tokens: dict[str, Caller] | None = None) -> None:
        self.tokens = dict(tokens or {})

    def verify(self, token: str) -> Caller:
        if token not in self.tokens:
            raise Unauthenticated("not a token of this pool")
        return self.tokens[token]


class InMemoryTracer(NoTracer):
    """Keeps the annotations and the names of the subsegments opened, in order; `header` is what
    it hands on to the next hop (None: not traced)."""

    def __init__(self, header: str | None = None) -> None:
        self.header = header
        self.annotations: dict[str, Any] = {}
        self.subsegments: list[str] = []

    def annotate(self, **values: Any) -> None:
        self.annotations.update({k: v for k, v in values.items() if v is not None})

    @contextmanager
    def subsegment(self, name: str) -> Iterator[Any]:
        self.subsegments.append(name)
        with super().subsegment(name) as span:
            yield span

    def propagation_header(self) -> str | None:
        return self.header


def fake_clients(*, clock: FakeClock | None = None, **overrides: Any) -> Clients:
    """Every port of `Clients` served by an in-memory fake, for `bootstrap(..., clients=...)`.

    Fakes that stand for one table or bucket share it, as the adapters do (the products the
    orders, images, import writer and cleanup see are the product repository's). `overrides`
    replace fakes by name (`orders=RacingOrders(...)`); the fakes built over the one replaced
    use the replacement. `clock` is the one the fakes compare expiry with (the service's).
    """
    clock = clock or FakeClock()

    def given(name: str, default: Any) -> Any:
        return overrides.pop(name) if name in overrides else default()

    idempotency = given("idempotency", InMemoryIdempotencyStore)
    products = given("products", lambda: InMemoryProductRepository(idempotency, clock))
    images = given("images", lambda: InMemoryImageRepository(products))
    import_jobs = given("import_jobs", InMemoryImportJobs)

    def processor() -> Any:
        from chalicelib.adapters.pillow_images import PillowImageProcessor  # local; Pillow loads on use

        return PillowImageProcessor()

    orders = given("orders", lambda: InMemoryOrderRepository(products, idempotency, clock))
    return Clients(
        verifier=given("verifier", InMemoryTokenVerifier),
        products=products,
        idempotency=idempotency,
        orders=orders,
        order_queue=given("order_queue", InMemoryOrderQueue),
        order_sagas=given("order_sagas", InMemoryOrderSagas),
        payments=given("payments", FakePaymentProvider),
        mailer=given("mailer", InMemoryMailer),
        directory=given("directory", InMemoryDirectory),
        images=images,
        uploads=given("uploads", lambda: InMemoryBucket("uploads", clock=clock)),
        media=given("media", lambda: InMemoryBucket("media", clock=clock)),
        image_processor=given("image_processor", processor),
        import_jobs=import_jobs,
        import_files=given("import_files", lambda: InMemoryBucket("imports", clock=clock)),
        import_writer=given("import_writer", lambda: InMemoryImportWriter(import_jobs, products.items)),
        import_topics=given("import_topics", InMemoryImportTopics),
        cleanup_images=given("cleanup_images", lambda: InMemoryCleanupImages(images.records)),
        product_lookup=given("product_lookup", lambda: InMemoryProductLookup(products)),
        cursors=given("cursors", InMemoryCursors),
        expiring_records=given("expiring_records", InMemoryExpiringRecords),
        event_bus=given("event_bus", InMemoryEventBus),
        change_stream=given("change_stream", InMemoryChangeStream),
        sales=given("sales", lambda: InMemorySalesProjection(clock)),
        sales_sources=given("sales_sources", lambda: InMemorySalesSources(lambda: orders.items)),
        once=given("once", InMemoryOnce),
        **overrides,  # an unknown name is a TypeError of Clients
    )
