"""Sending e-mail through Amazon SES (API v2, SendEmail with simple content: plain text, UTF-8).

The sender is the MAIL_FROM setting ("Name <address>" or a bare address). On AWS it must be an
identity verified in SES (the address, or its domain) in the functions' region, and while the
account is in the SES sandbox every recipient must be verified too: SES refuses the rest with
MessageRejected. The local stack verifies the sender when it starts and delivers everything to its
mailbox (docs/local-stack.md).

Errors: throttling, a 5xx or no answer is DependencyUnavailable (retry later); any other answer
from SES means this message will not be sent however often it is tried, and is MailRejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import error_code, is_transient_aws_error
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.mail import MailRejected

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

__all__ = ["SesMailer"]

_CHARSET = "UTF-8"


class SesMailer:
    def __init__(self, client: Callable[[], SESV2Client], sender: str) -> None:
        """`client`: gives the container's SES v2 client (made on first send); `sender`: the
        From address, verified in SES."""
        self._ses = client
        self._sender = sender

    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        """Send a plain-text e-mail to `to` (a single address string counts as one recipient).

        Raises DependencyUnavailable when SES is throttling, failing or unreachable (retry later),
        MailRejected when SES refuses the message, or when there is no sender or no recipient.
        """
        recipients = [to] if isinstance(to, str) else list(to)
        if not self._sender:
            raise MailRejected("NoSender", "MAIL_FROM is not set: there is no address to send from")
        if not recipients:
            raise MailRejected("NoRecipient", "the message has no recipient")
        try:
            self._ses().send_email(
                FromEmailAddress=self._sender,
                Destination={"ToAddresses": recipients},
                Content={"Simple": {
                    "Subject": {"Data": subject, "Charset": _CHARSET},
                    "Body": {"Text": {"Data": text, "Charset": _CHARSET}},
                }})
        except (ClientError, BotoCoreError) as exc:
            if is_transient_aws_error(exc):
                raise DependencyUnavailable(f"SES SendEmail failed: {exc}") from exc
            if isinstance(exc, ClientError):
                raise MailRejected(error_code(exc) or "ClientError",
                                   str(exc.response.get("Error", {}).get("Message", exc))) from exc
            raise  # a BotoCoreError with no answer behind it that is not a connection fault: a bug or credentials
