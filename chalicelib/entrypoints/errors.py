"""The one table of the API's error answers: which exception becomes which status, Chalice code,
headers and documented meaning.

http_common answers the project's exceptions from it and the OpenAPI document describes every
error status from it, so the two cannot drift. Kept free of pydantic and Chalice: http_common
imports it on every cold start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Mapping

from chalicelib.domain import errors
from chalicelib.domain.images import TooManyImages
from chalicelib.domain.orders import CannotCancel

__all__ = ["AnsweredBy", "ErrorAnswer", "ERRORS", "BY_STATUS", "answer_for"]


class AnsweredBy(StrEnum):
    APP = "app"  # a route raised one of `raised_by`
    CHALICE = "chalice"  # before the route runs, in Chalice's shape
    API_GATEWAY = "api_gateway"  # before the app runs, in API Gateway's own shape


@dataclass(frozen=True)
class ErrorAnswer:
    """One error status of the API."""

    status: int
    code: str  # the body's `Code`: Chalice's error code names (413: API Gateway's response type)
    description: str  # what the status means, for the OpenAPI document
    raised_by: tuple[type[errors.StorefrontError], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    answered_by: AnsweredBy = AnsweredBy.APP


ERRORS: tuple[ErrorAnswer, ...] = (
    ErrorAnswer(400, "BadRequestError", "Bad input: `Message` names the body field, header or parameter",
                (errors.InvalidInput,)),
    ErrorAnswer(401, "UnauthorizedError",
                "No valid ID token (missing, malformed, expired, another pool or app client)",
                (errors.Unauthenticated,), {"WWW-Authenticate": 'Bearer realm="storefront"'}),
    ErrorAnswer(403, "ForbiddenError", "The resource belongs to someone else", (errors.Forbidden,)),
    ErrorAnswer(404, "NotFoundError", "No such resource", (errors.NotFound,)),
    ErrorAnswer(409, "ConflictError", "Conflict (see the operation)", (errors.IdempotencyConflict, TooManyImages, CannotCancel)),
    ErrorAnswer(412, "PreconditionFailedError", "If-Match names a version that is not the current one",
                (errors.VersionMismatch,)),
    # API Gateway's gateway response type: its body is {"message": ...}, not Chalice's shape.
    ErrorAnswer(413, "REQUEST_TOO_LARGE",
                "Body over API Gateway's 10 MB payload limit (answered by API Gateway, not the app)",
                answered_by=AnsweredBy.API_GATEWAY),
    ErrorAnswer(415, "UnsupportedMediaType",
                "Content-Type is not application/json (answered by Chalice before the route runs)",
                answered_by=AnsweredBy.CHALICE),
    ErrorAnswer(428, "PreconditionRequiredError", 'If-Match: "<version>" is required',
                (errors.PreconditionRequired,)),
    # What was unavailable (throttling, the JWKS) is usually back soon: hence a short Retry-After.
    ErrorAnswer(503, "ServiceUnavailableError",
                "A dependency (DynamoDB throttling, SQS, the user pool's keys) is briefly unavailable; retry",
                (errors.DependencyUnavailable,), {"Retry-After": "1"}),
)

BY_STATUS: Mapping[int, ErrorAnswer] = {answer.status: answer for answer in ERRORS}


def answer_for(exc: errors.StorefrontError) -> ErrorAnswer | None:
    """The answer to an exception a route raised; None for one the API does not answer (a 500)."""
    for answer in ERRORS:
        if answer.raised_by and isinstance(exc, answer.raised_by):
            return answer
    return None
