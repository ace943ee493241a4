"""S3 event notifications as a queue delivers them: the one parser of that shape.

Powertools' S3Event reads the records; this module adds what a queue consumer needs on top:
keys decoded (S3 URL-encodes them, '+' for spaces, and Powertools 3.37 hands them over as sent),
S3's test event is no record at all, and anything that is not a notification is a PoisonMessage
(retried, then kept in the DLQ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.domain.errors import PoisonMessage

__all__ = ["CreatedObject", "created_objects"]


@dataclass(frozen=True)
class CreatedObject:
    bucket: str
    key: str


def created_objects(notification: Any) -> list[CreatedObject]:
    """The ObjectCreated records of a notification ([] for S3's test event).

    Raises PoisonMessage for anything that is not an S3 event notification."""
    if not isinstance(notification, dict):
        raise PoisonMessage("not an S3 event notification")
    if notification.get("Event") == "s3:TestEvent":
        return []  # S3 sends it when the notification configuration is set
    if not isinstance(notification.get("Records"), list):
        raise PoisonMessage("not an S3 event notification")
    from aws_lambda_powertools.utilities.data_classes import S3Event  # off the API's cold start

    found = []
    try:
        for record in S3Event(notification).records:
            if record.event_name.startswith("ObjectCreated:"):
                found.append(CreatedObject(record.s3.bucket.name, unquote_plus(record.s3.get_object.key)))
    except (KeyError, TypeError, AttributeError):
        raise PoisonMessage("an S3 record without eventName, bucket or key") from None
    return found
