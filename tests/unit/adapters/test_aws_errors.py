"""Which botocore errors the non-DynamoDB adapters treat as worth a later retry."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError, ParamValidationError,
    ReadTimeoutError,
)

from chalicelib.adapters.aws_errors import error_code, is_transient_aws_error


def _answer(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "..."},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "SendEmail")


@pytest.mark.parametrize("code, status", [
    ("TooManyRequestsException", 429),  # SES v2 and Cognito throttling
    ("LimitExceededException", 400),    # SES v2's sending quota
    ("Throttling", 400),                # SES v1's
    ("SomethingNew", 429),              # a throttle by its status alone
    ("InternalFailure", 500),
    ("InternalErrorException", 500),   # Cognito's
    ("ServiceUnavailable", 503),
    ("RequestTimeout", 400),
])
def test_throttling_a_5xx_or_a_timeout_answer_is_transient(code: str, status: int) -> None:
    assert is_transient_aws_error(_answer(code, status))


@pytest.mark.parametrize("code", ["MessageRejected", "BadRequestException", "InvalidParameterValue",
                                  "MailFromDomainNotVerifiedException", "SendingPausedException",
                                  "AccountSuspendedException", "NotAuthorizedException",
                                  "ResourceNotFoundException", "AccessDeniedException"])
def test_an_answer_refusing_the_request_itself_is_not(code: str) -> None:
    assert not is_transient_aws_error(_answer(code, 400))


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com"),
    ConnectTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"),
])
def test_no_answer_at_all_is_transient(exc: Exception) -> None:
    assert is_transient_aws_error(exc)


@pytest.mark.parametrize("exc", [NoCredentialsError(), ParamValidationError(report="bad"), ValueError("x")])
def test_a_bug_or_missing_credentials_is_not(exc: Exception) -> None:
    assert not is_transient_aws_error(exc)


def test_the_code_is_read_from_the_answer_and_empty_without_one() -> None:
    assert error_code(_answer("MessageRejected", 400)) == "MessageRejected"
    assert error_code(ClientError({}, "SendEmail")) == ""
