"""Sending to SQS, with the trace header that lets the consumer join the sender's trace."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.orders import OrderPlaced

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["SqsOrderQueue"]


class SqsOrderQueue:
    def __init__(self, client: Callable[[], SQSClient], queue_url: str) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, placed: OrderPlaced, trace_header: str | None) -> None:
        params: dict[str, Any] = {
            "QueueUrl": self._url,
            "MessageBody": json.dumps(placed.to_message(), separators=(",", ":")),
        }
        if trace_header:
            # One message per send_message: moto drops AWSTraceHeader on send_message_batch.
            params["MessageSystemAttributes"] = {
                "AWSTraceHeader": {"StringValue": trace_header, "DataType": "String"}}
        try:
            self._sqs().send_message(**params)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"the order could not be queued: {exc}") from exc
