"""E-mail as the services see it: how sending can fail for good."""

from __future__ import annotations

from chalicelib.domain.errors import StorefrontError

__all__ = ["MailRejected"]


class MailRejected(StorefrontError):
    """The mail service refused this message and will refuse it again (a malformed or refused
    address, an unverified sender, sending paused for the account): log it, do not retry.
    `code` is the service's reason ('MessageRejected', 'BadRequestException', ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
