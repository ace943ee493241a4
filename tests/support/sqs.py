"""A real SQS queue read as Lambda's event source mapping reads it, for tests that hand the
messages to a consumer themselves."""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["LambdaQueue"]

_RECORD_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                      "ApproximateFirstReceiveTimestamp", "AWSTraceHeader")


class LambdaQueue:
    def __init__(self, sqs: Any, url: str, region: str = "us-east-1") -> None:
        self.sqs = sqs
        self.url = url
        self.region = region
        self.arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def drain(self) -> None:
        """Delete whatever is visible, so a test sees only its own messages (PurgeQueue is
        allowed once a minute)."""
        while messages := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=0).get("Messages", []):
            self.delete(messages)

    def receive(self, count: int, timeout: float = 10,
                skip: Callable[[dict[str, Any]], bool] = lambda message: False) -> list[dict[str, Any]]:
        """Exactly `count` messages (fails when fewer arrive); messages `skip` matches are deleted."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            for message in self.sqs.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=min(10, count - len(messages)), WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", []):
                if skip(message):
                    self.delete([message])
                else:
                    messages.append(message)
        assert len(messages) == count, f"expected {count} messages, got {len(messages)}"
        return messages

    def receive_available(self, count: int = 10) -> list[dict[str, Any]]:
        """Up to `count` messages that are there now (none when the queue is empty)."""
        return list(self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=count, WaitTimeSeconds=0,
                                             MessageSystemAttributeNames=["All"],
                                             MessageAttributeNames=["All"]).get("Messages", []))

    def is_empty(self) -> bool:
        return not self.sqs.receive_message(QueueUrl=self.url, WaitTimeSeconds=0).get("Messages")

    def send(self, body: str) -> str:
        return self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"]

    def make_visible(self, messages: list[dict[str, Any]]) -> None:
        """What SQS does when a failed record's visibility timeout ends: the message comes back."""
        for message in messages:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"],
                                               VisibilityTimeout=0)

    def delete(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            try:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            except self.sqs.exceptions.ReceiptHandleIsInvalid:
                pass  # already deleted

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Lambda's SQS event for `messages`, as the event source mapping builds it."""
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "md5OfBody": m["MD5OfBody"],
            "attributes": {k: v for k, v in m.get("Attributes", {}).items() if k in _RECORD_ATTRIBUTES},
            "messageAttributes": {name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"],
                                         "stringListValues": [], "binaryListValues": []}
                                  for name, value in m.get("MessageAttributes", {}).items()},
            "eventSource": "aws:sqs", "eventSourceARN": self.arn, "awsRegion": self.region,
        } for m in messages]}
