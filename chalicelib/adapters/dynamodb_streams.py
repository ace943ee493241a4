"""DynamoDB streams: a stream record as a `Change`, and a batch read back from its stream.

One parser serves both ways a record arrives: in the stream consumer's Lambda event, and from
GetRecords when the on-failure queue's consumer reads back a batch the event source mapping gave
up on (there, botocore has turned ApproximateCreationDateTime into a datetime already).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import error_code, is_transient_aws_error
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.events import Change
from chalicelib.services.events import StreamBatch

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

__all__ = ["TRACE_ATTRIBUTE", "change_of", "DynamoChangeStream"]

# The attribute an item carries the X-Ray trace header of its last write in (adapters/tracing.py
# writes it): the change's events join that trace.
TRACE_ATTRIBUTE = "trace_header"

_deserializer = TypeDeserializer()


def change_of(record: Mapping[str, Any]) -> Change | None:
    """The change a stream record holds, or None for a record that is not one (no images, an
    image that is not DynamoDB JSON)."""
    try:
        stream = record["dynamodb"]
        old = _image(stream.get("OldImage"))
        new = _image(stream.get("NewImage"))
        created = stream["ApproximateCreationDateTime"]
        at = created if isinstance(created, datetime) else datetime.fromtimestamp(float(created), timezone.utc)
        change_id = str(record["eventID"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if old is None and new is None:
        return None
    trace = (new or old or {}).get(TRACE_ATTRIBUTE)
    return Change(change_id=change_id, at=at, old=old, new=new, trace_header=trace if isinstance(trace, str) else None)


def _image(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {key: _deserializer.deserialize(value) for key, value in image.items()}


class DynamoChangeStream:
    """Reads a batch back from its stream (the on-failure record names it, not its records)."""

    def __init__(self, client: Callable[[], DynamoDBStreamsClient]) -> None:
        self._streams = client

    def changes(self, batch: StreamBatch) -> list[tuple[str, Change | None]] | None:
        last = int(batch.last_sequence)
        found: list[tuple[str, Change | None]] = []
        try:
            iterator: str | None = self._streams().get_shard_iterator(
                StreamArn=batch.stream_arn, ShardId=batch.shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=batch.first_sequence)["ShardIterator"]
            while iterator:
                page = self._streams().get_records(ShardIterator=iterator, Limit=1000)
                for record in page["Records"]:
                    sequence = record["dynamodb"]["SequenceNumber"]
                    if int(sequence) > last:
                        return found
                    found.append((sequence, change_of(record)))
                if not page["Records"]:
                    return found  # the shard is open and has nothing newer yet
                iterator = page.get("NextShardIterator")
        except ClientError as exc:
            if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException",
                                   "ExpiredIteratorException"):
                return None
            if is_transient_aws_error(exc):
                raise DependencyUnavailable(f"the stream could not be read: {exc}") from exc
            raise
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"the stream could not be read: {exc}") from exc
        return found
