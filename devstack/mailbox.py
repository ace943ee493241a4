"""The local stack's mailbox: every e-mail the app sent through SES, newest first (`GET {mailbox}`,
`make mail`).

moto keeps each message its SES accepts in the in-process SES backend (`sent_messages`; SES v2's
SendEmail lands there too), with sender, recipients, subject and body but not when it was sent:
`record_send_times` stamps each message as moto accepts it. Nothing is delivered anywhere.

How it differs from SES: moto, like SES, refuses a sender that is not a verified identity
(`verify_sender` verifies MAIL_FROM when the stack starts), but it has no sandbox: any recipient
is accepted, where an account in the SES sandbox may only send to verified addresses.
"""

from __future__ import annotations

import email
import email.policy
import functools
import textwrap
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parseaddr
from typing import Any

__all__ = ["record_send_times", "verify_sender", "messages", "mailbox_entry", "mail_text"]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_send_times(clock: Callable[[], datetime] = _utc_now) -> None:
    """Stamp `sent_at` on every message moto's SES accepts from now on, in this process
    (idempotent; before moto serves)."""
    from moto.ses.models import SESBackend

    for name in ("send_email", "send_raw_email"):
        original = getattr(SESBackend, name)
        if getattr(original, "storefront_stamped", False):
            continue

        def stamped(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            message = _original(self, *args, **kwargs)
            message.sent_at = _iso(clock())
            return message

        functools.update_wrapper(stamped, original)
        stamped.storefront_stamped = True  # type: ignore[attr-defined]
        setattr(SESBackend, name, stamped)


def verify_sender(sesv2: Any, sender: str) -> str | None:
    """Make `sender`'s address ("Name <address>" or an address) a verified SES identity, as it
    must be on AWS; the address, or None when there is no sender."""
    _, address = parseaddr(sender)
    if not address:
        return None
    try:
        sesv2.create_email_identity(EmailIdentity=address)
    except sesv2.exceptions.AlreadyExistsException:
        pass
    return address


def mailbox_entry(message: Any) -> dict[str, Any] | None:
    """One of moto's sent messages as the mailbox lists it, or None for a kind it does not list
    (templated messages)."""
    sent_at = getattr(message, "sent_at", None)
    if hasattr(message, "raw_data"):  # SendRawEmail, or SendEmail with raw content
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        return {"to": list(message.destinations), "from": message.source or str(parsed.get("From", "")),
                "subject": str(parsed.get("Subject", "")),
                "text": body.get_content() if body is not None else "", "sent_at": sent_at}
    if hasattr(message, "body") and hasattr(message, "subject"):
        destinations: Mapping[str, list[str]] = message.destinations or {}
        return {"to": list(destinations.get("ToAddresses", [])), "from": message.source,
                "subject": message.subject, "text": message.body, "sent_at": sent_at}
    return None


def messages(account_id: str, region: str) -> list[dict[str, Any]]:
    """Every message moto's SES in this process has accepted for the account and region, newest first."""
    from moto.ses.models import ses_backends

    sent = list(ses_backends[account_id][region].sent_messages)  # a copy: sending appends meanwhile
    entries = (mailbox_entry(m) for m in reversed(sent))
    return [e for e in entries if e is not None]


def mail_text(entries: Iterable[Mapping[str, Any]], *, source: str, width: int = 100, limit: int = 20) -> str:
    """The mailbox for a person at a terminal: the newest `limit` messages, each with its time,
    recipients, sender and subject, then its text indented and wrapped to `width`."""
    entries = list(entries)
    lines = [f"{len(entries)} message{'' if len(entries) == 1 else 's'} in {source}, newest first"]
    for entry in entries[:limit]:
        lines += ["", "-" * min(width, 100),
                  f"{entry.get('sent_at') or 'time unknown'}  to {', '.join(entry.get('to') or []) or '(nobody)'}",
                  f"From:    {entry.get('from', '')}",
                  f"Subject: {entry.get('subject', '')}", ""]
        for paragraph in str(entry.get("text", "")).splitlines() or [""]:
            lines += textwrap.wrap(paragraph, max(width - 4, 20), initial_indent="    ",
                                   subsequent_indent="    ", break_on_hyphens=False) or [""]
    if len(entries) > limit:
        lines += ["", f"... and {len(entries) - limit} older (make mail LIMIT={len(entries)} shows them all)"]
    return "\n".join(lines)
