"""The low-stock e-mail: a seller is told once, when a product's stock crosses below the threshold.

"Once" is per StockLow event (each crossing is one event): the e-mail is sent under a claim on the
event's id, so a redelivered event, or two consumers given the same one, send one e-mail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Protocol

from chalicelib.domain.errors import PoisonMessage
from chalicelib.domain.mail import MailRejected
from chalicelib.logs import logger
from chalicelib.services.shared import Directory, Mailer

__all__ = ["Once", "LowStockNotifier", "Notified"]


class Once(Protocol):
    def run_once(self, key: str, action: Callable[[], None]) -> bool:
        """Run `action` unless it ran to the end under `key` before; returns whether it ran now.
        Raises DependencyUnavailable while another caller holds `key` (retry later), and what
        `action` raised (the claim is released, so a retry runs it again)."""


class Notified(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    NO_ADDRESS = "no_address"  # the seller has no e-mail address in the user pool
    REJECTED = "rejected"  # SES refused the message for good


class LowStockNotifier:
    def __init__(self, mailer: Mailer, directory: Directory, once: Once) -> None:
        self._mailer = mailer
        self._directory = directory
        self._once = once

    def notify(self, detail: Mapping[str, Any]) -> Notified:
        """E-mail the seller of a StockLow event's product. Raises PoisonMessage for a detail
        without what the e-mail names, DependencyUnavailable to be retried."""
        event_id, seller, product_id, name, stock, threshold = (
            detail.get(k) for k in ("event_id", "owner", "product_id", "name", "stock", "threshold"))
        if not (isinstance(event_id, str) and event_id and isinstance(seller, str) and seller
                and isinstance(product_id, str) and isinstance(name, str)
                and type(stock) is int and type(threshold) is int):
            raise PoisonMessage("a StockLow event without event_id, owner, product_id, name, stock and threshold")
        outcome = Notified.ALREADY_SENT

        def send() -> None:
            nonlocal outcome
            address = self._directory.email_of(seller)
            if address is None:
                outcome = Notified.NO_ADDRESS
                return
            units = "unit" if stock == 1 else "units"
            try:
                self._mailer.send([address], f"Low stock: {name}",
                                  f"Your product \"{name}\" ({product_id}) has {stock} {units} left, "
                                  f"below {threshold}.\nRestock it to keep selling it.\n")
            except MailRejected as exc:
                logger.error("low-stock e-mail refused", extra={"product_id": product_id, "seller": seller,
                                                                "code": exc.code})
                outcome = Notified.REJECTED
                return
            outcome = Notified.SENT

        self._once.run_once(f"low-stock#{event_id}", send)
        return outcome
