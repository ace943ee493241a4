"""Reading S3 notifications out of the uploads queues' messages (images and imports alike)."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import PoisonMessage
from chalicelib.entrypoints.s3_notifications import CreatedObject, created_objects


def _record(key: str, event: str = "ObjectCreated:Post", bucket: str = "uploads") -> dict:
    return {"eventSource": "aws:s3", "eventName": event,
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}}}


def test_the_test_event_s3_sends_on_configuration_carries_no_upload():
    assert created_objects({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}) == []


def test_keys_are_url_decoded_as_s3_encodes_them():
    notification = {"Records": [_record("uploads%2Fa%2Bb%2FP%2FI+x")]}
    assert created_objects(notification) == [CreatedObject("uploads", "uploads/a+b/P/I x")]


def test_only_created_objects_count():
    notification = {"Records": [_record("uploads/a/P/1", "ObjectRemoved:Delete"), _record("uploads/a/P/2")]}
    assert created_objects(notification) == [CreatedObject("uploads", "uploads/a/P/2")]


@pytest.mark.parametrize("body", [[], "text", {"Records": "nope"}, {"Records": [{"eventName": "ObjectCreated:Put"}]},
                                  {"hello": "world"}, {"Records": [None]}, {"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}])
def test_anything_else_is_poison(body):
    with pytest.raises(PoisonMessage):
        created_objects(body)
