"""The import's SNS topics: one message per chunk (fanned out to the workers' queue), and the
import-completed event."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.imports import Chunk

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef, PublishBatchRequestEntryTypeDef

__all__ = ["SnsImportTopics", "TRACE_ATTRIBUTE"]

# SQS fills the AWSTraceHeader system attribute only for messages sent to it directly (and only
# with SNS active tracing for fan-out; never locally): the header also travels as a message
# attribute of the same name, which raw delivery hands to the queue.
TRACE_ATTRIBUTE = "AWSTraceHeader"
_PUBLISH_BATCH = 10


class SnsImportTopics:
    def __init__(self, client: Callable[[], SNSClient], *, chunks_topic: str, completed_topic: str) -> None:
        self._sns = client
        self._chunks = chunks_topic
        self._completed = completed_topic

    def publish_chunks(self, chunks: Sequence[Chunk], trace_header: str | None) -> int:
        """Publish every chunk (PublishBatch, 10 a call); the number of calls. Raises
        DependencyUnavailable if any entry failed (the dispatcher is retried; workers dedupe)."""
        attributes: dict[str, MessageAttributeValueTypeDef] = (
            {TRACE_ATTRIBUTE: {"DataType": "String", "StringValue": trace_header}} if trace_header else {})
        calls = 0
        for start in range(0, len(chunks), _PUBLISH_BATCH):
            entries: list[PublishBatchRequestEntryTypeDef] = [
                {"Id": str(c.index), "Message": json.dumps(c.to_message(), separators=(",", ":")),
                 "MessageAttributes": attributes} for c in chunks[start:start + _PUBLISH_BATCH]]
            try:
                response = self._sns().publish_batch(TopicArn=self._chunks, PublishBatchRequestEntries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise DependencyUnavailable(f"SNS PublishBatch failed: {exc}") from exc
            calls += 1
            if response.get("Failed"):
                raise DependencyUnavailable(f"SNS refused chunk messages: {response['Failed'][:3]}")
        return calls

    def publish_completed(self, event: dict[str, Any]) -> None:
        """Publish an ImportCompleted event; its `status` is also a message attribute, for
        subscription filter policies."""
        try:
            self._sns().publish(
                TopicArn=self._completed, Message=json.dumps(event, separators=(",", ":")),
                MessageAttributes={"status": {"DataType": "String", "StringValue": event["status"]}})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"SNS Publish failed: {exc}") from exc
