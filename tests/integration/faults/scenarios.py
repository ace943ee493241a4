"""One scenario per asynchronous consumer: what a user sets going, and what must hold at the end
whatever went wrong in between (nothing lost, nothing applied twice, only poison in the DLQ, a
final state a user can read).

Each queue scenario also sends one poison message, so "the DLQ holds only what is truly poison"
is checked both ways: the poison is there, nothing else is.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.domain.cleanup import STALE_IMAGE_ERROR
from chalicelib.domain.ids import new_id
from chalicelib.domain.imports import Chunk
from devstack.tokens import local_email
from tests.integration.app.events_helpers import StreamTail, stream_event
from tests.integration.app.helpers import PRODUCT, body_of, create, products_of
from tests.integration.app.images_helpers import images_of, post_file, request_upload
from tests.integration.app.imports_helpers import TopicTap, upload
from tests.integration.app.orders_helpers import executions_named, new_product, place, read_order, stock_of
from tests.integration.faults.delivery import ONCE, REVERSED, TWICE, ScheduleRun
from tests.integration.faults.sagas import SAGA, SagaDriver
from tests.support.image_corpus import jpeg

__all__ = ["SCENARIOS", "Scenario", "POISON", "PAYMENTS_UNAVAILABLE", "table_stream", "publish_changes", "queued_events", "sales_of"]

POISON = "{this is not json"
OUT_OF_ORDER = "out of order"
PAYMENTS_UNAVAILABLE = "payment provider unavailable"


@dataclass
class Scenario(ABC):
    """A consumer under test: `arrange` sets the work going, `settle` delivers, `check` judges."""

    target: str
    s3_operations: frozenset[str] = frozenset()
    sns_operations: frozenset[str] = frozenset()
    kill_at: int = 3  # the write after which the process dies: mid-batch for every scenario
    # S3/SNS calls failed per operation, past the SDK's retries: each costs a delivery, and a
    # message has maxReceiveCount (5) of them, a schedule's event three, for all its operations.
    # More is an outage, which test_dead_letters.py covers.
    failed_calls: int = 3
    state: dict[str, Any] = field(default_factory=dict)

    @abstractmethod
    def arrange(self, world: Any, fault: str) -> None: ...

    @abstractmethod
    def settle(self, world: Any, how: str) -> None: ...

    @abstractmethod
    def check(self, world: Any, fault: str) -> None: ...


def dead_letters(world: Any, handler: str) -> list[str]:
    """Bodies in the consumer's DLQ (left there, visible)."""
    return [m["Body"] for m in _held(world.delivery.dead_letters(handler))]


def _held(queue: Any) -> list[dict[str, Any]]:
    """Every message the queue holds, in the order it gives them, then made visible again."""
    held: list[dict[str, Any]] = []
    while batch := queue.sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                             VisibilityTimeout=30).get("Messages", []):
        held += batch
    queue.make_visible(held)
    return held


def assert_only_poison(world: Any, handler: str, poisoned: bool = True) -> None:
    """The consumer's DLQ holds the poison message (twice, if it was delivered twice), nothing else."""
    held = dead_letters(world, handler)
    assert set(held) == ({POISON} if poisoned else set()), held


# -- orders -------------------------------------------------------------------------------------

STOCK = 5
QUANTITIES = (1, 1, 2, 1, 1, 1, 2)  # 9 units asked of 5


class Orders(Scenario):
    def arrange(self, world: Any, fault: str) -> None:
        seller, buyer = world.new_user(), world.new_user()
        product_id = new_product(world.api, seller, STOCK)
        orders = []
        for quantity in QUANTITIES:
            response = place(world.api, buyer, product_id, quantity)
            assert response.status_code == 202, response.body
            orders.append((body_of(response)["order_id"], quantity))
        unknown = []
        if fault == OUT_OF_ORDER:
            # An order that reaches the consumer before (or without) its product: the API checks
            # only the id's form, the consumer decides.
            response = place(world.api, buyer, new_id(), 1)
            assert response.status_code == 202, response.body
            unknown.append(body_of(response)["order_id"])
        world.delivery.queue(self.target).send(POISON)
        self.state.update(buyer=buyer, product_id=product_id, orders=orders, unknown=unknown)

    def settle(self, world: Any, how: str) -> None:
        world.delivery.drain([self.target], how)

    def check(self, world: Any, fault: str) -> None:
        buyer, orders = self.state["buyer"], self.state["orders"]
        final = {order_id: read_order(world.api, buyer, order_id) for order_id, _ in orders}
        assert {o["status"] for o in final.values()} <= {"reserved", "rejected"}, final
        stock = stock_of(world.api, self.state["product_id"])
        sold = sum(q for order_id, q in orders if final[order_id]["status"] == "reserved")
        assert stock == STOCK - sold and stock >= 0, (stock, sold)
        sfn = world.client("stepfunctions")
        for order_id, _ in orders:  # one saga per reserved order, whatever was delivered twice
            started = executions_named(sfn, world.stack.saga_arn, order_id)
            assert len(started) == (1 if final[order_id]["status"] == "reserved" else 0), (order_id, started)
        for order_id, quantity in orders:
            if final[order_id]["status"] == "rejected":
                # Stock only goes down: an order rejected for stock could not be served at the end either.
                assert final[order_id]["reason"] == "out_of_stock" and stock < quantity, final[order_id]
        for order_id in self.state["unknown"]:
            order = read_order(world.api, buyer, order_id)
            assert (order["status"], order["reason"]) == ("rejected", "product_not_found"), order
        assert_only_poison(world, self.target)


# -- the order saga -----------------------------------------------------------------------------

# Card -> the ending the saga must reach with it (status, reason), whatever fails on the way.
CARDS = {"pm_card_visa": ("confirmed", None), "pm_card_chargeDeclined": ("payment_failed", "card_declined"),
         "pm_card_chargeDeclinedInsufficientFunds": ("payment_failed", "insufficient_funds")}
SAGA_ORDERS = ("pm_card_visa", "pm_card_chargeDeclined", "pm_card_visa", "pm_card_chargeDeclinedInsufficientFunds",
               "pm_card_visa")
SAGA_PRICE = 1200
MAY_RESEND_MAIL = frozenset({"dynamodb throttling", "dynamodb unavailable"})


class Saga(Scenario):
    """Reserved orders taken through their sagas (the steps' functions, as the state machine runs
    them); the fault hurts the steps. Every order must reach the ending its card decides."""

    def arrange(self, world: Any, fault: str) -> None:
        seller, buyer = world.new_user(), world.new_user()
        product_id = new_product(world.api, seller, STOCK)
        orders = {}
        for card in SAGA_ORDERS:
            response = place(world.api, buyer, product_id, 1, payment_method=card)
            assert response.status_code == 202, response.body
            orders[body_of(response)["order_id"]] = card
        world.delivery.drain(["consume_orders"])  # no fault: it is aimed at the saga
        for order_id in orders:
            assert read_order(world.api, buyer, order_id)["status"] == "reserved"
        if fault == PAYMENTS_UNAVAILABLE:
            world.payments("POST", "/_devstack/faults", {"unavailable_next": 3})
        self.state.update(buyer=buyer, product_id=product_id, orders=orders)

    def settle(self, world: Any, how: str) -> None:
        driver = SagaDriver(world.api_app, world.client("stepfunctions"), world.stack.saga_arn)
        self.state["executions"] = driver.run(list(self.state["orders"]), repeat=how == TWICE)
        if how == TWICE:
            world.delivery.repeated[self.target] += len(self.state["orders"])

    def check(self, world: Any, fault: str) -> None:
        buyer, orders = self.state["buyer"], self.state["orders"]
        executions = self.state["executions"]
        assert {name: e.status for name, e in executions.items()} == dict.fromkeys(orders, "SUCCEEDED"), \
            {name: (e.status, e.error, e.errors) for name, e in executions.items()}
        final = {order_id: read_order(world.api, buyer, order_id) for order_id in orders}
        for order_id, card in orders.items():
            status, reason = CARDS[card]
            order = final[order_id]
            assert (order["status"], order.get("reason")) == (status, reason), (card, order, executions[order_id])
            endings = [h["status"] for h in order["history"] if h["status"] in ("payment_failed", "cancelled",
                                                                                 "failed", "rejected")]
            assert len(endings) == (0 if status == "confirmed" else 1), order["history"]
        if fault == PAYMENTS_UNAVAILABLE:  # the outage reached the steps, and was retried
            assert any(("AuthorizePayment", "PaymentProviderUnavailable") in e.errors for e in executions.values())
        confirmed = [order_id for order_id, order in final.items() if order["status"] == "confirmed"]
        assert stock_of(world.api, self.state["product_id"]) == STOCK - len(confirmed)  # the rest put back
        intents = world.payments("GET", "/v1/payment_intents?limit=100")["data"]
        for order_id in confirmed:
            (paid,) = [i for i in intents if i["metadata"].get("order_id") == order_id]  # authorized once
            assert (paid["status"], paid["amount_received"]) == ("succeeded", SAGA_PRICE)  # captured once
            assert final[order_id]["payment"] == {"status": "captured", "reference": paid["id"]}
            mails = world.mail_about(order_id)
            # Sent, then recorded: a DynamoDB failure between the two sends it again on the retry.
            assert len(mails) == 1 or (fault in MAY_RESEND_MAIL and len(mails) > 1), mails


# -- domain events: the sales read model and the low-stock e-mail -------------------------------


def table_stream(world: Any, logical_id: str) -> StreamTail:
    """The table's stream from now on (the suite's tables are shared: a test keeps its own records)."""
    return StreamTail(world.client("dynamodb"), world.client("dynamodbstreams"),
                      world.stack.provisioned[logical_id].ref)


def publish_changes(world: Any, publisher: str, stream: StreamTail, ids: list[str]) -> None:
    """What the table's event source mapping does with the new changes of `ids` (no fault: it is
    aimed at the read side): one batch to the publisher, whose events moto's rules route."""
    records = stream.new(ids)
    assert records, f"no changes of {ids} in the stream"
    answer = world.delivery.invoke(publisher, stream_event(records, stream.arn))
    assert answer == {"batchItemFailures": []}, answer


def queued_events(world: Any, handler: str) -> list[dict[str, Any]]:
    """The bus's events in the consumer's queue, in the order it gives them (left there, visible)."""
    return [json.loads(m["Body"]) for m in _held(world.delivery.queue(handler))]


def sales_of(world: Any, seller: Any) -> dict[str, Any]:
    response = world.api.get("/sellers/me/sales", headers=seller.headers())
    assert response.status_code == 200, response.body
    return body_of(response)


# Product -> its orders (quantity, card); the last confirmed order of the lamp is then cancelled.
SALES_ORDERS = {"Lamp": ((1, "pm_card_visa"), (2, "pm_card_visa"), (1, "pm_card_chargeDeclined"),
                         (3, "pm_card_visa")),
                "Chair": ((2, "pm_card_visa"), (1, "pm_card_visa"))}
SALES_STOCK = 20


class Sales(Scenario):
    """Orders confirmed (one then cancelled, one declined) through the orders consumer and their
    sagas, their changes published from the orders table's stream: the seller's sales must be the
    confirmed orders less the cancelled one, each counted once, in whatever order they arrive."""

    def arrange(self, world: Any, fault: str) -> None:
        seller, buyer = world.new_user(), world.new_user()
        products, orders = table_stream(world, "ProductsTable"), table_stream(world, "OrdersTable")
        placed: dict[str, tuple[str, int, str]] = {}  # order -> (product, quantity, card)
        product_ids = {}
        for name, wanted in SALES_ORDERS.items():
            product_ids[name] = body_of(create(world.api, seller, {**PRODUCT, "name": name, "stock": SALES_STOCK}))["id"]
            for quantity, card in wanted:
                response = place(world.api, buyer, product_ids[name], quantity, payment_method=card)
                assert response.status_code == 202, response.body
                placed[body_of(response)["order_id"]] = (name, quantity, card)
        world.delivery.drain(["consume_orders"])  # no fault: it is aimed at the projection
        driver = SagaDriver(world.api_app, world.client("stepfunctions"), world.stack.saga_arn)
        driver.run(list(placed))
        cancelled = [o for o, (name, _, card) in placed.items() if name == "Lamp" and card == "pm_card_visa"][-1]
        assert world.api.post(f"/orders/{cancelled}/cancel", headers=buyer.headers()).status_code == 202
        driver.run([f"{cancelled}-cancel"])
        final = {o: read_order(world.api, buyer, o)["status"] for o in placed}
        assert final == {o: "cancelled" if o == cancelled else CARDS[card][0] for o, (_, _, card) in placed.items()}
        # Names first, then the orders' changes in the stream's order: a cancellation is queued
        # after its confirmation (delivered out of order, it arrives before it).
        publish_changes(world, "publish_product_events", products, list(product_ids.values()))
        publish_changes(world, "publish_order_events", orders, list(placed))
        if fault == OUT_OF_ORDER:  # queued confirmation first: delivered newest first, the cancellation leads
            moves = [e["detail-type"] for e in queued_events(world, self.target) if e["detail"].get("order_id") == cancelled]
            assert moves == ["OrderConfirmed", "OrderCancelled"], moves
        world.delivery.queue(self.target).send(POISON)
        counted = {o: v for o, v in placed.items() if final[o] == "confirmed"}
        self.state.update(seller=seller, product_ids=product_ids, counted=counted)

    def settle(self, world: Any, how: str) -> None:
        world.delivery.drain([self.target], how)

    def check(self, world: Any, fault: str) -> None:
        self.check_sales(world)
        assert_only_poison(world, self.target)

    def check_sales(self, world: Any) -> None:
        """The seller's sales are the confirmed orders less the cancelled one, each counted once."""
        counted, product_ids = self.state["counted"], self.state["product_ids"]
        expected = []
        for name, product_id in product_ids.items():
            units = sum(q for product, q, _ in counted.values() if product == name)
            orders = sum(1 for product, _, _ in counted.values() if product == name)
            expected.append({"product_id": product_id, "name": name, "orders": orders, "units": units,
                             "revenue_cents": units * PRODUCT["price_cents"]})
        sales = sales_of(world, self.state["seller"])
        assert sales["totals"] == {"orders": 4, "units": 6, "revenue_cents": 6 * PRODUCT["price_cents"]}, sales
        assert sorted(sales["products"], key=lambda p: p["name"]) == sorted(expected, key=lambda p: p["name"]), sales


# Product -> (its stock, the quantities ordered, a restock to before the orders after it, and how
# many times its stock crosses below LOW_STOCK_THRESHOLD (5): one e-mail each).
LOW_STOCK = {"Kettle": (6, (2,), None, 1),  # 6 -> 4
             "Teapot": (7, (1, 1, 1, 1), None, 1),  # 7 -> 6 -> 5 -> 4 -> 3: once, at 5 -> 4
             "Cup": (5, (1, 1), None, 1),  # 5 -> 4 -> 3
             "Saucer": (9, (1,), None, 0),  # 9 -> 8: never below
             "Tray": (6, (2,), (8, (4,)), 2)}  # 6 -> 4, restocked to 8, 8 -> 4: two crossings
MAY_RESEND_LOW_STOCK = frozenset({"dynamodb throttling"})


class LowStock(Scenario):
    """Reservations take products' stock below 5; the products' changes are published from the
    table's stream: each crossing e-mails its seller once, naming the product."""

    def arrange(self, world: Any, fault: str) -> None:
        seller, buyer = world.new_user(), world.new_user()
        products = table_stream(world, "ProductsTable")
        product_ids = {}
        for name, (stock, quantities, _, _) in LOW_STOCK.items():
            product_ids[name] = body_of(create(world.api, seller, {**PRODUCT, "name": name, "stock": stock}))["id"]
            self._order(world, buyer, product_ids[name], quantities)
        world.delivery.drain(["consume_orders"])  # no fault: it is aimed at the e-mails
        for name, (_, _, restock, _) in LOW_STOCK.items():
            if restock is not None:
                stock, quantities = restock
                product_id = product_ids[name]
                etag = world.api.get(f"/products/{product_id}").headers["ETag"]
                response = world.api.patch(f"/products/{product_id}", body=json.dumps({"stock": stock}),
                                           headers=seller.headers(**{"If-Match": etag}))
                assert response.status_code == 200, response.body
                self._order(world, buyer, product_id, quantities)
                world.delivery.drain(["consume_orders"])
        publish_changes(world, "publish_product_events", products, list(product_ids.values()))
        world.delivery.queue(self.target).send(POISON)
        # A claim on an event's e-mail outlives the consumer's timeout and is shorter than the
        # queue's visibility timeout: a failed record comes back once that time has passed.
        world.delivery.elapse = world.clock.advance
        self.state.update(seller=seller, product_ids=product_ids)

    @staticmethod
    def _order(world: Any, buyer: Any, product_id: str, quantities: tuple[int, ...]) -> None:
        for quantity in quantities:
            response = place(world.api, buyer, product_id, quantity)
            assert response.status_code == 202, response.body

    def settle(self, world: Any, how: str) -> None:
        world.delivery.drain([self.target], how)

    def check(self, world: Any, fault: str) -> None:
        seller, product_ids = self.state["seller"], self.state["product_ids"]
        sent = ses_backends[DEFAULT_ACCOUNT_ID][world.stack.provisioned.stack.region].sent_messages
        for name, (_, _, _, crossings) in LOW_STOCK.items():
            product_id = product_ids[name]
            mails = [m for m in sent if product_id in getattr(m, "body", "")]
            # Sent, then recorded: a DynamoDB failure between the two sends it again on the retry.
            assert len(mails) == crossings or (fault in MAY_RESEND_LOW_STOCK and len(mails) > crossings), \
                (name, crossings, [m.body for m in mails])
            for mail in mails:
                assert mail.destinations == {"ToAddresses": [local_email(seller.username)]}, mail.destinations
                assert mail.subject == f"Low stock: {name}" and f"\"{name}\" ({product_id})" in mail.body, mail.body
        assert_only_poison(world, self.target)


# -- images -------------------------------------------------------------------------------------

NOT_AN_IMAGE = b"plain text pretending to be a JPEG" * 4


class Images(Scenario):
    def arrange(self, world: Any, fault: str) -> None:
        owner = world.new_user()
        product_id = body_of(create(world.api, owner, PRODUCT))["id"]
        expected: dict[str, tuple[str, str | None]] = {}
        for size in ((640, 480), (900, 600), (300, 200)):
            expected[self._upload(world, owner, product_id, jpeg(size), "image/jpeg")] = ("ready", None)
        expected[self._upload(world, owner, product_id, NOT_AN_IMAGE, "image/jpeg")] = ("failed", None)
        if fault == OUT_OF_ORDER:
            # The upload's event arrives after the object was deleted (replaced, or swept).
            gone = self._upload(world, owner, product_id, jpeg((320, 240)), "image/jpeg", keep=False)
            expected[gone] = ("failed", "the uploaded file is gone")
        world.delivery.queue(self.target).send(POISON)
        self.state.update(product_id=product_id, expected=expected)

    def _upload(self, world: Any, owner: Any, product_id: str, data: bytes, content_type: str,
                keep: bool = True) -> str:
        ticket = body_of(request_upload(world.api, owner, product_id, content_type, len(data)))
        assert post_file(ticket, data, content_type).status_code == 204
        if not keep:
            s3 = world.client("s3")
            s3.delete_object(Bucket=world.env["UPLOADS_BUCKET"], Key=ticket["upload"]["fields"]["key"])
        return ticket["image_id"]

    def settle(self, world: Any, how: str) -> None:
        world.delivery.drain([self.target], how)

    def check(self, world: Any, fault: str) -> None:
        product_id, expected = self.state["product_id"], self.state["expected"]
        images = images_of(world.api, product_id)
        assert set(images) == set(expected)
        s3 = world.client("s3")
        listed = s3.list_objects_v2(Bucket=world.env["MEDIA_BUCKET"], Prefix=f"products/{product_id}/")
        stored = Counter(key.split("/")[3] for key in (o["Key"] for o in listed.get("Contents", [])))
        for image_id, (status, reason) in expected.items():
            image = images[image_id]
            assert image["status"] == status, image
            if status == "ready":
                assert set(image["renditions"]) == {"small", "medium", "large"}
                distinct = len({url.split("?")[0] for url in image["renditions"].values()})
                assert stored[image_id] == distinct, (image_id, stored)  # every rendition, once
            else:
                assert image["error"] and (reason is None or image["error"] == reason), image
                assert image["renditions"] == {} and stored[image_id] == 0
        assert_only_poison(world, self.target)


# -- imports: the dispatcher and the workers ----------------------------------------------------

HEADER = "name,description,price_cents,currency,stock\n"
GOOD_ROWS = [f"Item {i},Imported,{100 + i},EUR,{i}" for i in range(10)]
BAD_ROWS = {5: "Broken,No price,,EUR,1", 10: "Negative,Stock below zero,100,EUR,-3"}  # by line


def csv_of(good: list[str], bad: dict[int, str]) -> bytes:
    rows = list(good)
    for line, row in sorted(bad.items()):
        rows.insert(line - 2, row)  # line 1 is the header
    return (HEADER + "".join(f"{r}\n" for r in rows)).encode()


class Imports(Scenario):
    """The whole import (dispatcher, workers, the workers' DLQ consumer); the fault hurts one."""

    handlers = ("dispatch_import", "import_chunk")

    def arrange(self, world: Any, fault: str) -> None:
        owner = world.new_user()
        created = world.api.post("/imports", headers=owner.headers())
        assert created.status_code == 201, created.body
        job = body_of(created)
        tap = TopicTap(world.client("sns"), world.client("sqs"), world.env["IMPORT_COMPLETED_TOPIC"],
                       f"completed-{uuid.uuid4().hex[:8]}")
        body = csv_of(GOOD_ROWS, BAD_ROWS)
        if fault == OUT_OF_ORDER and self.target == "dispatch_import":
            # A first file, replaced before the dispatcher ran: both notifications arrive, newest first.
            assert upload(job["upload"], csv_of(GOOD_ROWS[:3], {})).status_code == 204
        assert upload(job["upload"], body).status_code == 204
        if fault == OUT_OF_ORDER and self.target == "import_chunk":
            # A chunk of this very file delivered before the job is running.
            etag = world.client("s3").head_object(Bucket=world.env["IMPORTS_BUCKET"],
                                                  Key=job["upload"]["fields"]["key"])["ETag"]
            early = Chunk(job_id=job["job_id"], owner=owner.sub, etag=etag, index=0, start=len(HEADER),
                          end=len(body), first_row=1, rows=12)
            world.delivery.queue("import_chunk").send(json.dumps(early.to_message()))
        world.delivery.queue(self.target).send(POISON)
        self.state.update(owner=owner, job_id=job["job_id"], tap=tap)

    def settle(self, world: Any, how: str) -> None:
        # Out of order, the chunks' queue is served first: an early chunk meets a pending job.
        handlers = self.handlers[::-1] if how == REVERSED else self.handlers
        faulted = [h for h in handlers if h == self.target]
        world.delivery.drain(handlers, how if faulted else ONCE)
        # What reached the DLQs, before their consumers fail the jobs of what is there.
        self.state["dead"] = {handler: dead_letters(world, handler) for handler in self.handlers}
        for dead_letters_consumer in ("dispatch_import_dead_letter", "import_chunk_dead_letter"):
            world.delivery.deliver_each_once(dead_letters_consumer)

    def check(self, world: Any, fault: str) -> None:
        owner, job_id = self.state["owner"], self.state["job_id"]
        response = world.api.get(f"/imports/{job_id}", headers=owner.headers())
        job = body_of(response)
        assert (job["status"], job["rows_total"], job["rows_imported"], job["rows_failed"]) == \
            ("completed_with_errors", 12, 10, 2), job
        assert job["chunks_done"] == job["chunks_total"] == 3
        assert sorted(e["row"] for e in job["errors"]) == sorted(BAD_ROWS), job["errors"]
        products = products_of(world.api, owner.sub)
        names = Counter(p["name"] for p in products)
        assert names == Counter(row.split(",")[0] for row in GOOD_ROWS), names  # each row once
        announced = [m for m in self.state["tap"].messages(wait=1) if m.get("job_id") == job_id]
        assert announced and {m["status"] for m in announced} == {"completed_with_errors"}
        assert {m["rows_imported"] for m in announced} == {10}
        for handler in self.handlers:
            poisoned = handler == self.target
            assert set(self.state["dead"][handler]) == ({POISON} if poisoned else set()), self.state["dead"]
            assert_only_poison(world, handler, poisoned=False)  # the DLQ consumer logged and dropped it


# -- cleanup ------------------------------------------------------------------------------------


def scheduled_event(at: datetime) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/storefront-dev-cleanup"], "detail": {}}


EXPECTED_COUNTS = {"images_failed": 3, "upload_objects_deleted": 4, "media_objects_deleted": 2,
                   "idempotency_records_deleted": 2, "import_jobs_deleted": 2}


class Cleanup(Scenario):
    """A week and a day later: what the hourly run must fail, delete, and leave."""

    def arrange(self, world: Any, fault: str) -> None:
        at = datetime.now(timezone.utc) + timedelta(days=8)
        # Whatever earlier tests left is swept first, so the counts below are this test's alone.
        (baseline,) = world.delivery.fire(self.target, scheduled_event(at))
        assert baseline.results and baseline.results[0]["complete"], baseline
        owner = world.new_user()
        product_id = body_of(create(world.api, owner, PRODUCT))["id"]
        pending = [body_of(request_upload(world.api, owner, product_id, "image/png", 10))["image_id"]
                   for _ in range(EXPECTED_COUNTS["images_failed"] - 1)]
        # One of them was uploaded, but its notification was lost: its file must go too.
        uploaded = body_of(request_upload(world.api, owner, product_id, "image/png", 10))
        assert post_file(uploaded, b"0123456789", "image/png").status_code == 204
        world.delivery.queue("process_images").drain()
        pending.append(uploaded["image_id"])
        s3 = world.client("s3")
        strays = [f"uploads/{owner.sub}/{product_id}/{new_id()}" for _ in range(EXPECTED_COUNTS["upload_objects_deleted"])]
        for key in strays:
            s3.put_object(Bucket=world.env["UPLOADS_BUCKET"], Key=key, Body=b"x")
        media = [f"products/{product_id}/images/{new_id()}/200x100.jpg"
                 for _ in range(EXPECTED_COUNTS["media_objects_deleted"])]
        for key in media:
            s3.put_object(Bucket=world.env["MEDIA_BUCKET"], Key=key, Body=b"x")
        for _ in range(EXPECTED_COUNTS["idempotency_records_deleted"]):
            assert create(world.api, owner, PRODUCT, **{"Idempotency-Key": new_id()}).status_code == 201
        jobs = [body_of(world.api.post("/imports", headers=owner.headers()))["job_id"]
                for _ in range(EXPECTED_COUNTS["import_jobs_deleted"])]
        self.state.update(at=at, owner=owner, product_id=product_id, pending=pending, strays=strays,
                          media=media, jobs=jobs)

    def settle(self, world: Any, how: str) -> None:
        at = self.state["at"]
        runs = world.delivery.fire(self.target, scheduled_event(at), how)
        if how == REVERSED:  # an older event, retried late, arrives after the newer one
            runs += world.delivery.fire(self.target, scheduled_event(datetime.now(timezone.utc)))
        # The schedule goes on: a task a failing dependency stopped is taken up by the next run.
        runs += world.delivery.fire(self.target, scheduled_event(at + timedelta(hours=1)))
        self.state["runs"] = runs

    def check(self, world: Any, fault: str) -> None:
        owner, product_id = self.state["owner"], self.state["product_id"]
        images = images_of(world.api, product_id)
        assert {(i, images[i]["status"], images[i].get("error")) for i in images} == \
            {(i, "failed", STALE_IMAGE_ERROR) for i in self.state["pending"]}
        s3 = world.client("s3")
        left = {o["Key"] for o in s3.list_objects_v2(Bucket=world.env["UPLOADS_BUCKET"],
                                                     Prefix=f"uploads/{owner.sub}/").get("Contents", [])}
        assert not left & set(self.state["strays"]), "stray uploads left"
        assert not [k for k in left if k.split("/")[2] == product_id], "uploads of failed images left"
        left = {o["Key"] for o in s3.list_objects_v2(Bucket=world.env["MEDIA_BUCKET"],
                                                     Prefix=f"products/{product_id}/").get("Contents", [])}
        assert not left & set(self.state["media"])
        table = world.env["IDEMPOTENCY_TABLE"]
        remembered = world.client("dynamodb").scan(TableName=table)["Items"]
        assert not [i for i in remembered if owner.sub in i["pk"]["S"]]
        for job_id in self.state["jobs"]:
            assert world.api.get(f"/imports/{job_id}", headers=owner.headers()).status_code == 404
        runs: list[ScheduleRun] = self.state["runs"]
        assert not [r for r in runs if r.exhausted], "an event went to the failure destination"
        counted = Counter()
        for run in runs:
            for result in run.results:
                counted.update({k: result[k] for k in EXPECTED_COUNTS})
        clean = all(not r.errors for r in runs)
        for name, expected in EXPECTED_COUNTS.items():
            if clean and (name == "images_failed" or fault != "delivered concurrently"):
                # Conditional writes count once; so does everything when no run died half way.
                assert counted[name] == expected, (name, counted)
            elif fault != "delivered concurrently":  # two runs at once may both list, and count, one object
                assert counted[name] <= expected, (name, counted)


SCENARIOS = {
    "orders": lambda: Orders("consume_orders"),
    "saga": lambda: Saga(SAGA),
    "sales": lambda: Sales("project_sales"),
    "low stock": lambda: LowStock("email_low_stock"),
    "images": lambda: Images("process_images", s3_operations=frozenset({"GetObject", "PutObject"})),
    "dispatcher": lambda: Imports("dispatch_import", s3_operations=frozenset({"HeadObject", "GetObject"}),
                                  sns_operations=frozenset({"PublishBatch"}), kill_at=2, failed_calls=2),
    "workers": lambda: Imports("import_chunk", s3_operations=frozenset({"GetObject"}),
                               sns_operations=frozenset({"Publish"}), kill_at=2),
    "cleanup": lambda: Cleanup("cleanup", s3_operations=frozenset({"ListObjectsV2", "DeleteObjects"}),
                               failed_calls=1),
}
