"""The mailbox's reading of moto's sent messages, and `make mail`'s text for a terminal."""

from __future__ import annotations

from moto.ses.models import Message, RawMessage

from devstack.mailbox import mail_text, mailbox_entry
from devstack.tokens import local_email


def _entry(n: int, text: str = "Your order is confirmed.") -> dict:
    return {"to": [f"buyer{n}@example.com"], "from": "Shop <no-reply@example.com>",
            "subject": f"Order o-{n} confirmed", "text": text, "sent_at": f"2026-11-22T10:00:0{n}.000Z"}


def test_a_simple_message_is_listed_with_its_recipients_subject_text_and_time() -> None:
    message = Message("id-1", "Shop <no-reply@example.com>", "Order o-1 confirmed", "Thanks!\nShop",
                      {"ToAddresses": ["alice@example.com"], "CcAddresses": ["cc@example.com"]})
    message.sent_at = "2026-11-22T10:00:00.000Z"

    assert mailbox_entry(message) == {
        "to": ["alice@example.com"], "from": "Shop <no-reply@example.com>", "subject": "Order o-1 confirmed",
        "text": "Thanks!\nShop", "sent_at": "2026-11-22T10:00:00.000Z"}


def test_a_raw_message_is_read_from_its_mime_text_and_one_sent_before_stamping_has_no_time() -> None:
    raw = ("From: shop@example.com\r\nTo: bob@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nHello Bob\r\n")
    entry = mailbox_entry(RawMessage("id-2", "shop@example.com", ["bob@example.com"], raw))

    assert entry is not None
    assert (entry["to"], entry["subject"], entry["text"].strip(), entry["sent_at"]) == (
        ["bob@example.com"], "Grüße", "Hello Bob", None)


def test_the_text_keeps_the_order_it_is_given_and_shows_every_field() -> None:
    text = mail_text([_entry(2), _entry(1)], source="http://127.0.0.1:8001/mail")

    assert text.splitlines()[0] == "2 messages in http://127.0.0.1:8001/mail, newest first"
    assert text.index("Order o-2 confirmed") < text.index("Order o-1 confirmed")
    assert "2026-11-22T10:00:02.000Z  to buyer2@example.com" in text
    assert "From:    Shop <no-reply@example.com>" in text
    assert "    Your order is confirmed." in text


def test_long_lines_wrap_to_the_width_and_keep_their_line_breaks() -> None:
    text = mail_text([_entry(1, "first line\n" + "word " * 40)], source="s", width=60)

    body = text.split("Subject: Order o-1 confirmed\n\n", 1)[1].splitlines()
    assert body[0] == "    first line"
    assert len(body) > 2 and all(len(line) <= 60 for line in body)


def test_beyond_the_limit_it_says_how_many_are_older_and_how_to_see_them() -> None:
    text = mail_text([_entry(n) for n in (3, 2, 1)], source="s", limit=2)

    assert "Order o-1" not in text
    assert text.endswith("... and 1 older (make mail LIMIT=3 shows them all)")


def test_an_empty_mailbox_says_so() -> None:
    assert mail_text([], source="s") == "0 messages in s, newest first"


def test_a_local_user_gets_an_example_com_address_unless_the_name_is_one() -> None:
    assert local_email("alice") == "alice@example.com"
    assert local_email("carol@shop.test") == "carol@shop.test"
