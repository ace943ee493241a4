"""What AWS accepts and refuses around event sources, checked as AWS checks it.

CreateEventSourceMapping's limits (an SQS trigger's, and a DynamoDB stream mapping's as the
template declares it), the reading of a ReportBatchItemFailures response (SQS and streams read it
differently), and the triggers the local stack can deliver faithfully. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalice.app import (
    CloudWatchEventConfig,
    S3EventConfig,
    ScheduledEventConfig,
    SNSEventConfig,
    SQSEventConfig,
)

__all__ = [
    "BATCH_FAILED",
    "StreamMapping",
    "UnsupportedEventSource",
    "check_simple_pattern",
    "check_sqs_mapping",
    "check_supported",
    "failed_item_ids",
    "stream_checkpoint",
]


class UnsupportedEventSource(Exception):
    """The app declares a trigger that the local stack cannot deliver faithfully."""


def check_supported(event_sources: list[Any]) -> None:
    """Raise UnsupportedEventSource for the first trigger the local stack cannot deliver."""
    supported = (SQSEventConfig, SNSEventConfig, ScheduledEventConfig, CloudWatchEventConfig)
    for source in event_sources:
        if isinstance(source, S3EventConfig):
            raise UnsupportedEventSource(
                f"{source.name}: on_s3_event is not supported (SAM cannot package it): "
                "route S3 notifications through a queue"
            )
        if not isinstance(source, supported):
            raise UnsupportedEventSource(
                f"{source.name}: {type(source).__name__} triggers are not supported locally"
            )
        if isinstance(source, CloudWatchEventConfig):
            check_simple_pattern(source.name, source.event_pattern)


def failed_item_ids(result: Any, message_ids: list[str]) -> set[str] | None:
    """The ids a ReportBatchItemFailures response names, or None when it fails the whole batch."""
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


def check_sqs_mapping(source: SQSEventConfig, timeout_seconds: float,
                      queue_attributes: dict[str, str]) -> None:
    """Raise ValueError for what CreateEventSourceMapping would reject."""
    name = source.name
    fifo = queue_attributes.get("FifoQueue") == "true"
    limit = 10 if fifo else 10000
    if not 1 <= source.batch_size <= limit:
        raise ValueError(f"{name}: batch_size must be 1..{limit}, got {source.batch_size}")
    window = source.maximum_batching_window_in_seconds
    if not 0 <= window <= 300:
        raise ValueError(f"{name}: maximum_batching_window_in_seconds must be 0..300, got {window}")
    if source.batch_size > 10 and window < 1:
        raise ValueError(
            f"{name}: a batch_size above 10 needs maximum_batching_window_in_seconds of at least 1"
        )
    if source.maximum_concurrency is not None and not 2 <= source.maximum_concurrency <= 1000:
        raise ValueError(
            f"{name}: maximum_concurrency must be 2..1000, got {source.maximum_concurrency}"
        )
    visibility = int(queue_attributes["VisibilityTimeout"])
    if visibility < timeout_seconds:
        raise ValueError(
            f"{name}: the queue's visibility timeout ({visibility} s) is less than the "
            f"function's timeout ({timeout_seconds} s)"
        )


def check_simple_pattern(name: str, pattern: Any, path: str = "") -> None:
    """Only exact-value patterns are delivered locally: moto's matching is trusted for no more."""
    if not isinstance(pattern, dict) or not pattern:
        raise UnsupportedEventSource(f"{name}: an event pattern must be a non-empty object")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            check_simple_pattern(name, value, where)
            continue
        exact = isinstance(value, list) and value and all(
            v is None or isinstance(v, (str, int, float, bool)) for v in value
        )
        if key.startswith("$") or not exact:
            raise UnsupportedEventSource(
                f"{name}: on_cw_event pattern {where!r} = {json.dumps(value)} is not supported "
                "locally; only lists of exact values are"
            )


# -- DynamoDB stream event source mappings ---------------------------------------------------

# What the local stream poller honours; anything else in the template is refused by name, so a
# setting never silently means nothing locally (FilterCriteria, TumblingWindowInSeconds, ...).
STREAM_MAPPING_PROPERTIES = frozenset({
    "EventSourceArn", "FunctionName", "StartingPosition", "BatchSize",
    "MaximumBatchingWindowInSeconds", "ParallelizationFactor", "BisectBatchOnFunctionError",
    "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "FunctionResponseTypes",
    "DestinationConfig", "Enabled",
})


@dataclass(frozen=True)
class StreamMapping:
    """An AWS::Lambda::EventSourceMapping on a DynamoDB stream, with Lambda's defaults filled in.

    `maximum_retry_attempts` and `maximum_record_age_seconds` are -1 for "until the record
    expires", as in Lambda; `on_failure` is the destination's ARN, or None.
    """

    logical_id: str
    uuid: str
    function_name: str
    stream_arn: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    window_seconds: float = 0
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    report_batch_item_failures: bool = False
    on_failure: str | None = None
    enabled: bool = True

    @classmethod
    def from_properties(cls, logical_id: str, uuid: str, props: Mapping[str, Any]) -> StreamMapping:
        """From the template's (evaluated) properties; raises ValueError as CreateEventSourceMapping
        would, or for a setting the local poller does not honour."""
        check_stream_mapping(logical_id, props)
        arn = props["EventSourceArn"]
        if not isinstance(arn, str) or ":dynamodb:" not in arn or "/stream/" not in arn:
            raise ValueError(f"{logical_id}: only DynamoDB stream mappings are supported locally "
                             f"(SQS triggers come from the app's decorators), got {arn!r}")
        on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if on_failure is not None and ":sqs:" not in on_failure:
            raise ValueError(f"{logical_id}: only an SQS on-failure destination is supported locally, "
                             f"got {on_failure!r}")
        return cls(
            logical_id=logical_id,
            uuid=uuid,
            function_name=str(props["FunctionName"]).rsplit(":function:", 1)[-1],
            stream_arn=arn,
            starting_position=props["StartingPosition"],
            batch_size=int(props.get("BatchSize", 100)),
            window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            bisect_on_error=_flag(props.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            on_failure=on_failure,
            enabled=_flag(props.get("Enabled", True)),
        )


def check_stream_mapping(logical_id: str, props: Mapping[str, Any]) -> None:
    """Raise ValueError for a stream mapping's setting Lambda would refuse, or that the local
    poller does not honour. Only literal values are checked (intrinsics pass)."""
    unknown = sorted(set(props) - STREAM_MAPPING_PROPERTIES)
    if unknown:
        raise ValueError(f"{logical_id}: not supported locally: {', '.join(unknown)}")
    for key in ("EventSourceArn", "FunctionName", "StartingPosition"):
        if key not in props:
            raise ValueError(f"{logical_id}: {key} is required for a stream mapping")

    def literal(key: str) -> Any:
        value = props.get(key)
        return None if isinstance(value, dict) else value

    position = literal("StartingPosition")
    if position is not None and position not in ("TRIM_HORIZON", "LATEST"):
        raise ValueError(f"{logical_id}: StartingPosition must be TRIM_HORIZON or LATEST, got {position!r}")
    limits = {"BatchSize": (1, 10000), "MaximumBatchingWindowInSeconds": (0, 300),
              "MaximumRetryAttempts": (-1, 10000), "MaximumRecordAgeInSeconds": (-1, 604800),
              "ParallelizationFactor": (1, 10)}
    for key, (low, high) in limits.items():
        value = literal(key)
        if value is not None and not low <= int(value) <= high:
            raise ValueError(f"{logical_id}: {key} must be {low}..{high}, got {value}")
    age = literal("MaximumRecordAgeInSeconds")
    if age is not None and -1 < int(age) < 60:
        raise ValueError(f"{logical_id}: MaximumRecordAgeInSeconds must be -1 or 60..604800, got {age}")
    factor = literal("ParallelizationFactor")
    if factor is not None and int(factor) != 1:
        # Lambda then runs several batches of one shard at once, in order per partition key.
        raise ValueError(f"{logical_id}: ParallelizationFactor above 1 is not supported locally")
    types = literal("FunctionResponseTypes")
    if types is not None and not set(types) <= {"ReportBatchItemFailures"}:
        raise ValueError(f"{logical_id}: FunctionResponseTypes may only hold ReportBatchItemFailures")


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


# The whole batch failed: the response was not one Lambda can read as a partial failure.
BATCH_FAILED = -1


def stream_checkpoint(result: Any, sequence_numbers: Sequence[str]) -> int | None:
    """Where Lambda checkpoints a stream batch after a ReportBatchItemFailures response.

    None: every record succeeded (no response, an empty or null `batchItemFailures`). Otherwise
    the index of the failed record with the lowest sequence number (the records before it are
    done; it and all after it are retried), or BATCH_FAILED when an itemIdentifier is missing,
    empty or names no record of the batch.
    """
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None or failures == []:
        return None
    if not isinstance(failures, list):
        return BATCH_FAILED
    positions = {number: index for index, number in enumerate(sequence_numbers)}
    failed: list[int] = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return BATCH_FAILED
        failed.append(positions[identifier])
    # Sequence numbers grow along a shard, so the lowest is the earliest in the batch.
    return min(failed, key=lambda index: int(sequence_numbers[index]))
