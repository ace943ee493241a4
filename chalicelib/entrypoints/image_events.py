"""The image uploads queue's consumer: S3 ObjectCreated notifications -> renditions.

Why a queue between S3 and the function (and not @app.on_s3_event): Chalice's SAM packaging
refuses on_s3_event, and the queue gives retries, a dead-letter queue, partial batch failures
and a concurrency cap.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from chalice import Blueprint

from chalicelib.adapters.logs import logger
from chalicelib.bootstrap import container
from chalicelib.config import IMAGES_MAX_CONCURRENCY, max_concurrency
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records

__all__ = ["events", "upload_keys"]

events = Blueprint(__name__)


class PoisonMessage(ValueError):
    """A message that is not an S3 notification: retried, then kept in the DLQ for a person."""


# No batching window: a user is waiting for the renditions (median upload -> ready <= 1 s). Five
# records (worst case ~5 s each for a 40 MP file) fit the 30 s timeout, and the queue's 180 s
# visibility is 6x that timeout, as AWS advises. The cap (per stage) bounds the load on S3 and DynamoDB.
@events.on_sqs_message(queue="ImageUploadsQueue", batch_size=5, maximum_batching_window_in_seconds=0,
                       maximum_concurrency=max_concurrency(IMAGES_MAX_CONCURRENCY, 10))
def process_images(event: Any) -> dict[str, Any]:
    return process_records(event, _process, span_name="## process_images record")


def _process(record: Any) -> None:
    images = container().images
    for bucket, key in upload_keys(json_body_of(record)):
        if bucket != container().settings.uploads_bucket:
            logger.warning("notification ignored: not the uploads bucket", extra={"bucket": bucket})
            continue
        images.process_upload(key)


def upload_keys(notification: Any) -> list[tuple[str, str]]:
    """(bucket, key) of each ObjectCreated record of an S3 notification; [] for S3's test event.

    Raises PoisonMessage for anything else.
    """
    if isinstance(notification, dict) and notification.get("Event") == "s3:TestEvent":
        return []  # S3 sends it when the notification configuration is set
    records = notification.get("Records") if isinstance(notification, dict) else None
    if not isinstance(records, list):
        raise PoisonMessage("not an S3 event notification")
    found = []
    for entry in records:
        try:
            if not str(entry["eventName"]).startswith("ObjectCreated:"):
                continue
            # S3 URL-encodes keys in notifications, with '+' for spaces.
            found.append((str(entry["s3"]["bucket"]["name"]), unquote_plus(str(entry["s3"]["object"]["key"]))))
        except (KeyError, TypeError):
            raise PoisonMessage("an S3 record without eventName, bucket or key") from None
    return found
