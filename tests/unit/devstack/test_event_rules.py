"""How Lambda reads a stream batch's ReportBatchItemFailures response, and which stream mapping
settings the local stack accepts."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.event_rules import BATCH_FAILED, StreamMapping, stream_checkpoint

SEQUENCE_NUMBERS = ["900", "1000", "1100", "1200"]  # numeric order differs from string order
STREAM = "arn:aws:dynamodb:us-east-1:1:table/t/stream/2026-01-01T00:00:00.000"


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "ok"])
def test_no_failures_in_the_response_is_the_whole_batch_done(response: Any) -> None:
    assert stream_checkpoint(response, SEQUENCE_NUMBERS) is None


def test_the_checkpoint_is_the_failed_record_with_the_lowest_sequence_number() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "1100"}, {"itemIdentifier": "1000"}]}

    assert stream_checkpoint(response, SEQUENCE_NUMBERS) == 1


def test_sequence_numbers_compare_as_numbers_not_as_text() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "1000"}, {"itemIdentifier": "900"}]}

    assert stream_checkpoint(response, SEQUENCE_NUMBERS) == 0


@pytest.mark.parametrize("failures", [
    [{"itemIdentifier": ""}], [{"itemIdentifier": None}], [{"sequenceNumber": "1000"}],
    [{"itemIdentifier": "77"}], [{"itemIdentifier": "1000"}, {"itemIdentifier": "nope"}], "1000",
])
def test_an_empty_missing_or_unknown_item_identifier_fails_the_whole_batch(failures: Any) -> None:
    assert stream_checkpoint({"batchItemFailures": failures}, SEQUENCE_NUMBERS) == BATCH_FAILED


def _properties(**overrides: Any) -> dict[str, Any]:
    return {"EventSourceArn": STREAM, "FunctionName": "sf-dev-publish", "StartingPosition": "TRIM_HORIZON",
            **overrides}


def test_a_mapping_without_settings_gets_lambdas_defaults() -> None:
    mapping = StreamMapping.from_properties("M", "id", _properties())

    assert (mapping.batch_size, mapping.window_seconds, mapping.bisect_on_error, mapping.maximum_retry_attempts,
            mapping.maximum_record_age_seconds, mapping.report_batch_item_failures, mapping.on_failure,
            mapping.enabled) == (100, 0, False, -1, -1, False, None, True)


def test_a_function_named_by_arn_is_known_by_its_name() -> None:
    mapping = StreamMapping.from_properties(
        "M", "id", _properties(FunctionName="arn:aws:lambda:us-east-1:1:function:sf-dev-publish"))

    assert mapping.function_name == "sf-dev-publish"


@pytest.mark.parametrize(("overrides", "refusal"), [
    ({"EventSourceArn": "arn:aws:sqs:us-east-1:1:q"}, "only DynamoDB stream"),
    ({"BatchSize": 0}, "BatchSize"),
    ({"MaximumBatchingWindowInSeconds": 301}, "MaximumBatchingWindowInSeconds"),
    ({"MaximumRetryAttempts": -2}, "MaximumRetryAttempts"),
    ({"TumblingWindowInSeconds": 60}, "TumblingWindowInSeconds"),
    ({"FunctionResponseTypes": ["Other"]}, "FunctionResponseTypes"),
    ({"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:s3:::bucket"}}}, "SQS on-failure"),
])
def test_settings_lambda_or_the_local_poller_would_refuse_are_refused(overrides: dict[str, Any],
                                                                      refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        StreamMapping.from_properties("M", "id", _properties(**overrides))
