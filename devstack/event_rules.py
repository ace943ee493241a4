"""What AWS accepts and refuses around event sources, checked as AWS checks it.

CreateEventSourceMapping's limits, the reading of a ReportBatchItemFailures response, and the
triggers the local stack can deliver faithfully. Pure functions: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from chalice.app import (
    CloudWatchEventConfig,
    S3EventConfig,
    ScheduledEventConfig,
    SNSEventConfig,
    SQSEventConfig,
)

__all__ = [
    "UnsupportedEventSource",
    "check_simple_pattern",
    "check_sqs_mapping",
    "check_supported",
    "failed_item_ids",
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
