"""The image uploads queue's consumer: S3 ObjectCreated notifications -> renditions.

Why a queue between S3 and the function (and not @app.on_s3_event): Chalice's SAM packaging
refuses on_s3_event, and the queue gives retries, a dead-letter queue, partial batch failures
and a concurrency cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Blueprint, SQSEvent

from chalicelib.bootstrap import services
from chalicelib.config import IMAGES_MAX_CONCURRENCY, max_concurrency
from chalicelib.entrypoints.s3_notifications import created_objects
from chalicelib.logs import logger
from chalicelib.entrypoints.sqs_batches import json_body_of, process_records

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["events"]

events = Blueprint(__name__)


# No batching window: a user is waiting for the renditions (median upload -> ready <= 1 s). Five
# records (worst case ~5 s each for a 40 MP file) fit the 30 s timeout, and the queue's 180 s
# visibility is 6x that timeout, as AWS advises. The cap (per stage) bounds the load on S3 and DynamoDB.
@events.on_sqs_message(queue="ImageUploadsQueue", batch_size=5, maximum_batching_window_in_seconds=0,
                       maximum_concurrency=max_concurrency(IMAGES_MAX_CONCURRENCY, 10))
def process_images(event: SQSEvent) -> PartialItemFailureResponse:
    return process_records(event, _process, span_name="## process_images record")


def _process(record: SQSRecord) -> None:
    images = services().images
    for created in created_objects(json_body_of(record)):  # PoisonMessage -> retried -> DLQ
        if created.bucket != services().settings.uploads_bucket:
            logger.warning("notification ignored: not the uploads bucket", extra={"bucket": created.bucket})
            continue
        images.process_upload(created.key)
