"""What the domain events' tests share: a table's stream read as Lambda's event source mapping
reads it, and the read side's queues."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["StreamTail", "stream_event"]


class StreamTail:
    """A table's stream from the moment it is made: `new()` gives the records written since the
    last call (the tables are shared by the folder's tests, so a test keeps only its own)."""

    def __init__(self, dynamodb: Any, streams: Any, table: str) -> None:
        self.streams = streams
        self.arn: str = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.shard_id: str = streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self._seen = len(self._all())

    def _all(self) -> list[dict[str, Any]]:
        iterator = self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=self.shard_id,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        return records

    def new(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The records since the last call; only those of items whose `id` is in `ids`, if given."""
        records = self._all()
        fresh, self._seen = records[self._seen:], len(records)
        wanted = None if ids is None else set(ids)
        return [r for r in fresh if wanted is None or r["dynamodb"]["Keys"]["id"]["S"] in wanted]


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """Lambda's DynamoDB stream event for `records` as GetRecords gave them (botocore turned
    ApproximateCreationDateTime into a datetime; Lambda sends epoch seconds)."""

    def as_lambda(record: dict[str, Any]) -> dict[str, Any]:
        dynamodb = dict(record["dynamodb"])
        created = dynamodb["ApproximateCreationDateTime"]
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}

    return {"Records": [as_lambda(r) for r in records]}

