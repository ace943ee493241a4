"""The hourly cleanup: one bounded run, one summary line (which is also its CloudWatch metrics)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from chalice.app import Blueprint, CloudWatchEvent, Rate

from chalicelib.logs import logger
from chalicelib.bootstrap import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["events", "summary"]

events = Blueprint(__name__)

_METRICS = {
    "images_failed": "ImagesFailed", "image_records_deleted": "ImageRecordsDeleted",
    "upload_objects_deleted": "UploadObjectsDeleted", "media_objects_deleted": "MediaObjectsDeleted",
    "objects_listed": "ObjectsListed", "idempotency_records_deleted": "IdempotencyRecordsDeleted",
    "import_jobs_deleted": "ImportJobsDeleted",
}


def summary(report: dict[str, Any], duration_ms: float) -> dict[str, Any]:
    """The run's counts, and the same as metrics in CloudWatch's embedded metric format, so the
    one log line also feeds dashboards and alarms (no PutMetricData call)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    metrics = EphemeralMetrics(namespace="Storefront", service="storefront")
    for key, name in _METRICS.items():
        metrics.add_metric(name=f"Cleanup{name}", unit=MetricUnit.Count, value=report[key])
    metrics.add_metric(name="CleanupDuration", unit=MetricUnit.Milliseconds, value=duration_ms)
    metrics.add_metric(name="CleanupIncomplete", unit=MetricUnit.Count, value=0 if report["complete"] else 1)
    return {**report, "duration_ms": duration_ms, **metrics.serialize_metric_set()}


@events.schedule(Rate(1, unit=Rate.HOURS))
def cleanup(event: CloudWatchEvent) -> dict[str, Any]:
    started = time.perf_counter()
    context = cast("LambdaContext", event.context)  # Chalice types it as a dict; it is Lambda's context
    # The schedule's time, not the clock: `make cleanup NOW=...` runs it as if at another time.
    now = datetime.fromisoformat(event.time.replace("Z", "+00:00")).astimezone(timezone.utc)
    services().tracer.annotate(cleanup_at=event.time)
    report = services().cleanup.run(now, context.get_remaining_time_in_millis).as_dict()
    line = summary(report, round((time.perf_counter() - started) * 1000, 1))
    logger.info("cleanup summary", extra=line)
    return report
