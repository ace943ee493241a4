"""The one error table: a route's exception is answered as the table says, and the document says the same."""

from __future__ import annotations

import json

import pytest
from chalice import Chalice
from chalice.test import Client

from chalicelib.domain import errors
from chalicelib.domain.images import TooManyImages
from chalicelib.entrypoints.errors import BY_STATUS, ERRORS, AnsweredBy, answer_for
from chalicelib.entrypoints.http_common import routes
from chalicelib.entrypoints.openapi import OPERATIONS, document

# One instance of every exception a route may raise, by the status the API answers it with.
RAISED = [
    (errors.InvalidInput("limit", "must be an integer from 1 to 100"), 400),
    (errors.Unauthenticated("the token expired"), 401),
    (errors.Forbidden("not yours"), 403),
    (errors.NotFound("no such product"), 404),
    (errors.IdempotencyConflict("the key was used with another body"), 409),
    (TooManyImages("a product holds at most 20 images"), 409),
    (errors.VersionMismatch(expected=2, current=3), 412),
    (errors.PreconditionRequired('If-Match: "<version>" is required'), 428),
    (errors.DependencyUnavailable("throttled"), 503),
]


def _app_raising(exc: Exception) -> Chalice:
    app = Chalice(app_name="errors")
    route = routes(app)  # a Chalice app routes as a Blueprint does

    @route("/fails")
    def fails() -> None:
        raise exc

    return app


@pytest.mark.parametrize(("exc", "status"), RAISED, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "")
def test_a_route_answers_each_exception_as_the_table_says(exc, status):
    answer = BY_STATUS[status]

    with Client(_app_raising(exc)) as client:
        response = client.http.get("/fails")

    assert response.status_code == status
    assert json.loads(response.body) == {"Code": answer.code, "Message": str(exc)}
    assert {name: response.headers.get(name) for name in answer.headers} == dict(answer.headers)


def test_401_challenges_and_503_says_when_to_retry():
    assert dict(BY_STATUS[401].headers) == {"WWW-Authenticate": 'Bearer realm="storefront"'}
    assert dict(BY_STATUS[503].headers) == {"Retry-After": "1"}


@pytest.mark.parametrize("exc", [errors.ConditionNotMet("stale"), errors.KeyAlreadyUsed("twin"),
                                 errors.PoisonMessage("not a message")])
def test_an_exception_the_table_does_not_name_is_not_answered(exc):
    # A ConditionNotMet reaching a route is a bug of the service above it: a 500, never a guess.
    assert answer_for(exc) is None
    with Client(_app_raising(exc)) as client:
        assert client.http.get("/fails").status_code == 500


def test_each_status_appears_once_and_only_the_app_rows_name_exceptions():
    assert len(BY_STATUS) == len(ERRORS)
    for answer in ERRORS:
        assert bool(answer.raised_by) == (answer.answered_by is AnsweredBy.APP), answer.status


def test_every_error_status_the_document_states_comes_from_the_table():
    doc = document()
    described = set()
    for op in OPERATIONS:
        responses = doc["paths"][op.path][op.method.lower()]["responses"]
        for status in op.errors:
            answer, documented = BY_STATUS[status], responses[str(status)]
            described.add(status)
            assert documented["description"] == op.notes.get(status, answer.description)
            if answer.answered_by is AnsweredBy.API_GATEWAY:
                assert "headers" not in documented
            else:
                assert set(documented["headers"]) == {"X-Request-Id", *answer.headers}
                assert set(answer.headers) <= set(doc["components"]["headers"])

    assert described == set(BY_STATUS)  # and no row of the table goes undocumented
