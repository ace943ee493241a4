"""Which botocore errors a later retry can fix, for the adapters of services other than DynamoDB.

The rules are botocore's own "standard" retry mode's (botocore/retries/standard.py): a throttling
error code or HTTP 429, a 5xx, a request timeout, or no answer at all (connection refused, reset,
timed out). botocore has already retried such a call a few times before raising; the adapter turns
what is left into DependencyUnavailable, so the caller retries later (a queue record comes back,
a Step Functions task backs off). DynamoDB has its own classifier (adapters/dynamodb.py): it also
reads pynamodb's exceptions and the reasons of a cancelled transaction, and importing it costs
pynamodb's import, which a function that only sends mail should not pay.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

__all__ = ["error_code", "is_transient_aws_error"]

# botocore's ThrottledRetryableChecker and TransientRetryableChecker codes.
_THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})
_TIMEOUT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException"})


def error_code(exc: ClientError) -> str:
    """The service's error code ('MessageRejected', 'TooManyRequestsException', ...), or ''."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_transient_aws_error(exc: BaseException) -> bool:
    """True for throttling, a 5xx, a timeout, or a request that got no answer; False for an answer
    that says the request itself is wrong (4xx other than throttling) and for anything else."""
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return True
    if not isinstance(exc, ClientError):
        return False
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status == 429 or status >= 500 or error_code(exc) in _THROTTLING_CODES | _TIMEOUT_CODES
