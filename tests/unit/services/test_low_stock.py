"""The low-stock e-mail over in-memory fakes: a StockLow event (made from a product's change, as the
stream consumer makes it, and delivered as JSON) e-mails the product's seller once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.bootstrap import Services, bootstrap
from chalicelib.domain.errors import DependencyUnavailable, PoisonMessage
from chalicelib.domain.events import EventSource, EventType, events_of
from chalicelib.domain.mail import MailRejected
from chalicelib.services.low_stock import Notified
from tests.unit.event_fakes import InMemoryOnce
from tests.unit.fakes import InMemoryDirectory, InMemoryMailer, fake_clients, fake_settings
from tests.unit.stream_records import LOW_STOCK_RULE, PRODUCT_ID, SELLER, change, delivered, product_image, routed

SELLER_EMAIL = "seller@example.com"


class RejectingMailer(InMemoryMailer):
    """SES refusing every message for good (a refused address); `attempts` counts the sends tried."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        self.attempts += 1
        raise MailRejected("MessageRejected", "Email address is not verified.")


@dataclass
class World:
    mailer: InMemoryMailer
    directory: InMemoryDirectory
    once: InMemoryOnce
    services: Services

    def notify(self, detail: dict[str, Any]) -> Notified:
        return self.services.low_stock.notify(detail)


def world_with(mailer: InMemoryMailer | None = None) -> World:
    mailer = mailer or InMemoryMailer()
    directory, once = InMemoryDirectory({SELLER: SELLER_EMAIL}), InMemoryOnce()
    services = bootstrap(fake_settings(), clients=fake_clients(mailer=mailer, directory=directory, once=once))
    return World(mailer, directory, once, services)


@pytest.fixture
def world() -> World:
    return world_with()


def stock_low(before: int = 6, after: int = 3, change_id: str = "c-1", name: str = "Mug") -> dict[str, Any]:
    """The StockLow event of a change of the product's stock, as the low-stock rule routes it to
    its queue's consumer."""
    events = events_of(EventSource.PRODUCTS, change(product_image(stock=before, name=name),
                                                    product_image(stock=after, name=name, version=2), change_id))
    (event,) = routed(events, LOW_STOCK_RULE)
    assert event.detail_type is EventType.STOCK_LOW
    return delivered(event)[1]


def test_the_seller_is_emailed_naming_the_product_its_id_and_the_stock_left(world):
    assert world.notify(stock_low(after=3, name="Blue mug")) == Notified.SENT

    (mail,) = world.mailer.sent
    assert mail.to == (SELLER_EMAIL,)
    assert "Blue mug" in mail.subject
    assert "Blue mug" in mail.text and PRODUCT_ID in mail.text
    assert "3 units left" in mail.text and "below 5" in mail.text


def test_one_unit_left_is_said_in_the_singular(world):
    world.notify(stock_low(after=1))

    assert "1 unit left" in world.mailer.sent[0].text


def test_an_event_delivered_twice_sends_one_email(world):
    event = stock_low()

    outcomes = [world.notify(event), world.notify(event)]

    assert outcomes == [Notified.SENT, Notified.ALREADY_SENT]
    assert len(world.mailer.sent) == 1


def test_each_crossing_is_an_email_of_its_own(world):
    world.notify(stock_low(change_id="c-1"))
    world.notify(stock_low(change_id="c-9"))  # restocked since, and fallen below again

    assert len(world.mailer.sent) == 2


def test_a_second_consumer_given_the_event_while_the_first_sends_is_told_to_retry_and_sends_nothing():
    event = stock_low()
    raised: list[Exception] = []

    class SecondConsumerMeanwhile(InMemoryMailer):
        def send(self, to: Sequence[str], subject: str, text: str) -> None:
            try:
                w.notify(event)
            except DependencyUnavailable as exc:
                raised.append(exc)
            super().send(to, subject, text)

    w = world_with(SecondConsumerMeanwhile())

    assert w.notify(event) == Notified.SENT
    assert len(raised) == 1 and len(w.mailer.sent) == 1
    assert w.notify(event) == Notified.ALREADY_SENT  # the second consumer's retry


def test_a_seller_without_an_address_is_not_emailed_and_the_event_is_not_retried(world):
    event = stock_low()
    del world.directory.emails[SELLER]

    assert world.notify(event) == Notified.NO_ADDRESS
    world.directory.emails[SELLER] = SELLER_EMAIL
    assert world.notify(event) == Notified.ALREADY_SENT  # done with: a redelivery looks no further

    assert world.mailer.sent == []


def test_a_message_the_mail_service_refuses_for_good_is_not_retried():
    mailer = RejectingMailer()
    w = world_with(mailer)
    event = stock_low()

    assert w.notify(event) == Notified.REJECTED
    assert w.notify(event) == Notified.ALREADY_SENT

    assert mailer.attempts == 1


def test_when_the_mail_service_is_unavailable_the_claim_is_released_and_the_retry_sends(world):
    event = stock_low()
    world.mailer.failing = True

    with pytest.raises(DependencyUnavailable):
        world.notify(event)

    assert world.mailer.sent == [] and not world.once.claimed and not world.once.done
    world.mailer.failing = False
    assert world.notify(event) == Notified.SENT
    assert len(world.mailer.sent) == 1


@pytest.mark.parametrize("missing", ["event_id", "owner", "product_id", "name", "stock", "threshold"])
def test_an_event_without_what_the_email_names_is_poison_and_claims_nothing(world, missing):
    detail = {k: v for k, v in stock_low().items() if k != missing}

    with pytest.raises(PoisonMessage):
        world.notify(detail)

    assert world.mailer.sent == [] and not world.once.done


@pytest.mark.parametrize("changes", [{"event_id": ""}, {"owner": ""}, {"stock": "3"}, {"threshold": 5.0},
                                     {"stock": True}, {"product_id": 7}])
def test_an_event_with_a_field_of_the_wrong_kind_is_poison(world, changes):
    with pytest.raises(PoisonMessage):
        world.notify({**stock_low(), **changes})

    assert world.mailer.sent == []
