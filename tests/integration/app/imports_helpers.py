"""What the import tests share: uploads through the presigned form, the real queues read as
Lambda reads them, a tap on a topic, and failures injected into the app's batch writes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from botocore.awsrequest import AWSResponse

from tests.support.sqs import LambdaQueue

__all__ = ["upload", "Queue", "TopicTap", "failing_batch_writes"]

Queue = LambdaQueue  # the imports' upload and chunk queues


def upload(form: dict[str, Any], body: bytes) -> requests.Response:
    """POST `body` to a presigned form, as `curl -F` does."""
    return requests.post(form["url"], data=form["fields"], files={"file": ("products.csv", body, "text/csv")},
                         timeout=30)


class TopicTap:
    """A queue subscribed (raw) to a topic: what the topic published, in order."""

    def __init__(self, sns: Any, sqs: Any, topic_arn: str, name: str) -> None:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        self.queue = Queue(sqs, url)
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=self.queue.arn,
                      Attributes={"RawMessageDelivery": "true"})

    def messages(self, wait: float = 2) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            batch = self.queue.sqs.receive_message(QueueUrl=self.queue.url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=0, MessageAttributeNames=["All"]
                                                   ).get("Messages", [])
            self.queue.delete(batch)
            found += [json.loads(m["Body"]) for m in batch]
            if not batch:
                time.sleep(0.1)
        return found


@contextmanager
def failing_batch_writes(client: Any, *, after: int, code: str = "ProvisionedThroughputExceededException"
                         ) -> Iterator[list[int]]:
    """Let `after` BatchWriteItem calls of `client` through, then answer every other with `code`.

    botocore's public before-call event may answer in the service's place; its retries happen
    below it, so the failure reaches the app at once. Yields the count of calls seen.
    """
    seen = [0]

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        seen[0] += 1
        if seen[0] <= after:
            return None
        return (AWSResponse("http://dynamodb.invalid", 400, {}, None),
                {"Error": {"Code": code, "Message": "injected by the test"},
                 "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}}})

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", answer)
    try:
        yield seen
    finally:
        client.meta.events.unregister("before-call.dynamodb.BatchWriteItem", answer)
