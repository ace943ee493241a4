"""SesMailer and CognitoDirectory, the e-mail side of the order saga, against moto's SES v2 and
Cognito (the folder's provisioned server). Throttling and 5xx answers are made on the wire with
botocore's `before-send` hook: the adapter and botocore's parsing run as they would on AWS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.adapters.cognito import CognitoDirectory
from chalicelib.adapters.ses_mail import SesMailer
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.domain.mail import MailRejected
from tests.integration.app.conftest import REGION, Stack
from tests.support.moto import free_port

pytestmark = pytest.mark.timeout(60)

SENDER = "Storefront <orders@shop.example.com>"


def _client(service: str, endpoint_url: str) -> Any:
    # One attempt: the answers made here are what botocore's retries would end with.
    return boto3.client(service, endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))


def _sent(subject: str) -> list[Any]:
    return [m for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages if getattr(m, "subject", "") == subject]


def _answering(client: Any, operation: str, status: int, code: str) -> Any:
    """`client`, whose every `operation` is answered on the wire with `status` and `code`."""

    class Body:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: Any) -> Any:
            yield self.data

    def answer(**_: Any) -> AWSResponse:
        return AWSResponse("https://fault.invalid", status, {"x-amzn-ErrorType": code},
                           Body(json.dumps({"__type": code, "message": "made by the test"}).encode()))

    service = client.meta.service_model.service_id.hyphenize()  # the event names' spelling of it
    client.meta.events.register_first(f"before-send.{service}.{operation}", answer)
    return client


@pytest.fixture(scope="module")
def ses(stack: Stack) -> Any:
    client = _client("sesv2", stack.endpoint_url)
    client.create_email_identity(EmailIdentity="orders@shop.example.com")  # what SES requires of a sender
    return client


@pytest.fixture
def subject() -> str:
    return f"Order o-{uuid.uuid4().hex[:8]} confirmed: grüße"


# -- SesMailer -------------------------------------------------------------------------------------

def test_a_message_is_sent_from_the_sender_to_the_recipient_as_plain_utf8_text(ses, subject):
    SesMailer(lambda: ses, SENDER).send(["alice@example.com"], subject, "Danke, Alice!\nYour order ships soon.")

    [message] = _sent(subject)
    assert message.source == SENDER
    assert message.destinations == {"ToAddresses": ["alice@example.com"]}
    assert message.body == "Danke, Alice!\nYour order ships soon."


def test_a_single_address_string_is_one_recipient_not_its_characters(ses, subject):
    SesMailer(lambda: ses, SENDER).send("bob@example.com", subject, "text")

    assert [m.destinations for m in _sent(subject)] == [{"ToAddresses": ["bob@example.com"]}]


def test_a_sender_ses_has_not_verified_is_rejected_for_good(ses, subject):
    with pytest.raises(MailRejected) as refused:
        SesMailer(lambda: ses, "someone@unverified.example.org").send(["alice@example.com"], subject, "text")

    assert refused.value.code == "MessageRejected"
    assert _sent(subject) == []


def test_a_malformed_address_is_rejected_for_good(ses, subject):
    with pytest.raises(MailRejected):
        SesMailer(lambda: ses, SENDER).send(["alice-at-nowhere"], subject, "text")

    assert _sent(subject) == []


@pytest.mark.parametrize("sender, to, code", [("", ["alice@example.com"], "NoSender"), (SENDER, [], "NoRecipient")])
def test_no_sender_or_no_recipient_is_rejected_without_asking_ses(sender, to, code):
    unreachable = _client("sesv2", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(MailRejected) as refused:
        SesMailer(lambda: unreachable, sender).send(to, "subject", "text")

    assert refused.value.code == code


@pytest.mark.parametrize("status, code", [(429, "TooManyRequestsException"), (500, "InternalFailure"),
                                          (503, "ServiceUnavailable")])
def test_throttling_and_5xx_answers_are_dependency_unavailable(stack, ses, status, code, subject):
    ses = _answering(_client("sesv2", stack.endpoint_url), "SendEmail", status, code)

    with pytest.raises(DependencyUnavailable) as unavailable:
        SesMailer(lambda: ses, SENDER).send(["alice@example.com"], subject, "text")

    assert code in str(unavailable.value)
    assert _sent(subject) == []


def test_ses_out_of_reach_is_dependency_unavailable():
    unreachable = _client("sesv2", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(DependencyUnavailable):
        SesMailer(lambda: unreachable, SENDER).send(["alice@example.com"], "subject", "text")


# -- CognitoDirectory ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cognito_client(stack: Stack) -> Any:
    return _client("cognito-idp", stack.endpoint_url)


@pytest.fixture
def new_pool_user(stack: Stack, cognito_client: Any) -> Callable[..., str]:
    """Make a user of the pool (with `email` unless None); its sub."""

    def make(email: str | None) -> str:
        attributes = [{"Name": "email", "Value": email}] if email else []
        user = cognito_client.admin_create_user(
            UserPoolId=stack.user_pool_id, Username=f"user-{uuid.uuid4().hex[:12]}", MessageAction="SUPPRESS",
            UserAttributes=attributes)["User"]
        return next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")

    return make


def test_a_users_email_is_found_by_their_sub(stack, cognito_client, new_pool_user):
    new_pool_user("someone.else@example.com")
    sub = new_pool_user("carol@example.com")

    assert CognitoDirectory(lambda: cognito_client, stack.user_pool_id).email_of(sub) == "carol@example.com"


def test_a_user_without_an_address_or_an_unknown_sub_is_none(stack, cognito_client, new_pool_user):
    directory = CognitoDirectory(lambda: cognito_client, stack.user_pool_id)

    assert directory.email_of(new_pool_user(None)) is None
    assert directory.email_of(str(uuid.uuid4())) is None


@pytest.mark.parametrize("user_id", ['x" or sub ^= "', 'a"b', "a\\b", "", "x" * 129, "a b"])
def test_an_id_that_is_not_a_subs_shape_is_none_without_asking_cognito(stack, user_id):
    unreachable = _client("cognito-idp", f"http://127.0.0.1:{free_port()}")

    assert CognitoDirectory(lambda: unreachable, stack.user_pool_id).email_of(user_id) is None


def test_an_address_found_is_reused_until_it_is_older_than_the_cache_allows(stack, cognito_client, new_pool_user):
    sub = new_pool_user("dave@example.com")
    now = [1000.0]
    directory = CognitoDirectory(lambda: cognito_client, stack.user_pool_id, cache_seconds=300,
                                 monotonic=lambda: now[0])
    assert directory.email_of(sub) == "dave@example.com"
    username = cognito_client.list_users(UserPoolId=stack.user_pool_id, Filter=f'sub = "{sub}"')["Users"][0]["Username"]
    cognito_client.admin_update_user_attributes(UserPoolId=stack.user_pool_id, Username=username,
                                                UserAttributes=[{"Name": "email", "Value": "dave@new.example.com"}])

    now[0] += 299
    assert directory.email_of(sub) == "dave@example.com"
    now[0] += 1
    assert directory.email_of(sub) == "dave@new.example.com"


def test_a_user_given_an_address_later_is_found_at_once(stack, cognito_client, new_pool_user):
    sub = new_pool_user(None)
    directory = CognitoDirectory(lambda: cognito_client, stack.user_pool_id)
    assert directory.email_of(sub) is None
    username = cognito_client.list_users(UserPoolId=stack.user_pool_id, Filter=f'sub = "{sub}"')["Users"][0]["Username"]
    cognito_client.admin_update_user_attributes(UserPoolId=stack.user_pool_id, Username=username,
                                                UserAttributes=[{"Name": "email", "Value": "erin@example.com"}])

    assert directory.email_of(sub) == "erin@example.com"


@pytest.mark.parametrize("status, code", [(400, "TooManyRequestsException"), (500, "InternalErrorException")])
def test_cognito_throttling_or_failing_is_dependency_unavailable(stack, new_pool_user, status, code):
    sub = new_pool_user("frank@example.com")
    failing = _answering(_client("cognito-idp", stack.endpoint_url), "ListUsers", status, code)

    with pytest.raises(DependencyUnavailable):
        CognitoDirectory(lambda: failing, stack.user_pool_id).email_of(sub)


def test_a_refusal_that_no_retry_fixes_is_not_hidden_as_unavailable(stack, new_pool_user):
    from botocore.exceptions import ClientError

    sub = new_pool_user("grace@example.com")
    refusing = _answering(_client("cognito-idp", stack.endpoint_url), "ListUsers", 400, "NotAuthorizedException")

    with pytest.raises(ClientError) as refused:
        CognitoDirectory(lambda: refusing, stack.user_pool_id).email_of(sub)

    assert not isinstance(refused.value, DependencyUnavailable)
    assert refused.value.response["Error"]["Code"] == "NotAuthorizedException"
