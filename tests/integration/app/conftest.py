"""The real app, through chalice.test.Client, against one moto server provisioned from infra/resources.json.

The server and its resources are made once for this folder; every test makes its own users (and
so its own products), which keeps the tests independent while sharing the tables.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import jwt
import pytest

from chalice.test import Client
from pynamodb.signals import pre_dynamodb_send

from chalicelib import bootstrap
from chalicelib.logs import logger
from devstack import mailbox
from devstack.chalice_config import StageConfig
from devstack.payments import PaymentsStandIn
from devstack.provision import Provisioned, provision
from devstack.tokens import issue_token
from infra.resources import load_template
from tests.integration.app.helpers import User
from tests.integration.app.orders_helpers import OrdersQueue
from tests.support import iam_audit
from tests.support.app_wiring import install_app
from tests.support.moto import running_moto_server

REGION = "us-east-1"
# The dev stage's sender, as .chalice/config.json sets it: chalice.test.Client applies the stage's
# variables while it is open, so services wired then (install_app inside a test) read this one.
MAIL_FROM = StageConfig("dev").environment()["MAIL_FROM"]


@dataclass(frozen=True)
class Stack:
    endpoint_url: str
    provisioned: Provisioned
    user_pool_id: str
    client_id: str
    payments: PaymentsStandIn  # the stand-in provider the app's payment adapter calls

    @property
    def saga_arn(self) -> str:
        return self.provisioned["OrderSagaStateMachine"].ref

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    """A moto server with the template's resources, the payment provider's stand-in (its key in
    the template's secret, as the local stack puts it), and the app's environment pointing at them."""
    payments = PaymentsStandIn().start()
    try:
        with running_moto_server() as endpoint_url, pytest.MonkeyPatch.context() as env:
            provisioned = provision(load_template(), endpoint_url=endpoint_url, region=REGION)
            summary = provisioned.summary()
            pool_id, client_id = summary["user_pool_id"], summary["user_pool_client_id"]
            aws = {"endpoint_url": endpoint_url, "region_name": REGION, "aws_access_key_id": "testing",
                   "aws_secret_access_key": "testing"}
            boto3.client("secretsmanager", **aws).put_secret_value(
                SecretId=provisioned["PaymentsApiKeySecret"].ref, SecretString=payments.api_key)
            mailbox.verify_sender(boto3.client("sesv2", **aws), MAIL_FROM)  # as SES requires of a sender
            for name, value in {
                **provisioned.env(),
                "AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "COGNITO_JWKS_URL": f"{endpoint_url}/{pool_id}/.well-known/jwks.json",
                "TRACING": "off", "PAYMENTS_API_URL": payments.url, "MAIL_FROM": MAIL_FROM,
            }.items():
                env.setenv(name, value)
            for leaked in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                env.delenv(leaked, raising=False)
            install_app()  # wired from this environment, as a Lambda container would be
            try:
                yield Stack(endpoint_url, provisioned, pool_id, client_id, payments)
            finally:
                bootstrap.install(None)
    finally:
        payments.stop()


@pytest.fixture(scope="package", autouse=True)
def least_privilege(stack: Stack) -> Iterator[list[iam_audit.Call]]:
    """Every AWS call a handler makes in this folder must be one its role allows (infra/policies.py):
    checked once all the folder's tests have run, failing the last one's teardown otherwise."""
    with iam_audit.recording() as calls:
        yield calls
    refused = iam_audit.violations(calls, stack.provisioned)
    if refused:
        pytest.fail("calls the deployed roles would refuse:\n" + "\n".join(refused))


@pytest.fixture(scope="package")
def api(stack: Stack) -> Iterator[Any]:
    """`api.get(path, headers=...)`, `api.post(...)`, ...: chalice.test.Client's HTTP side."""
    from app import app

    with Client(app) as client:
        yield client.http


@pytest.fixture(scope="package")
def lambdas(stack: Stack) -> Iterator[Any]:
    """`lambdas.invoke(function_name, payload)`: chalice.test.Client's Lambda side (an event
    handler or an @lambda_function, called with the event as Lambda would call it)."""
    from app import app

    with Client(app) as client:
        yield client.lambda_


@pytest.fixture(scope="package")
def cognito(stack: Stack) -> Any:
    return stack.client("cognito-idp")


@pytest.fixture
def new_user(stack: Stack, cognito: Any) -> Callable[[], User]:
    """Make a user of the pool, unique to this test, with a real ID token."""

    def make() -> User:
        username = f"user-{uuid.uuid4().hex[:12]}"
        token = issue_token(cognito, stack.user_pool_id, stack.client_id, username)
        claims = jwt.decode(token, options={"verify_signature": False})
        return User(username, token, claims["sub"])

    return make


@pytest.fixture
def alice(new_user: Callable[[], User]) -> User:
    return new_user()


@pytest.fixture
def bob(new_user: Callable[[], User]) -> User:
    return new_user()


@pytest.fixture
def app_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, with the app's records: its logger writes them itself and does not pass them on to
    the root logger, where caplog listens."""
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def aws_calls() -> Iterator[Counter[str]]:
    """DynamoDB requests the app makes while the test runs, by operation name.

    pynamodb sends its pre_dynamodb_send signal (blinker) once per request, from the one place
    every pynamodb call goes through (Connection.dispatch), transactions included: a public
    hook, no patching, and it counts requests, not retries inside botocore. botocore itself has
    no process-wide hook (each session has its own event emitter, and the app's is private to
    its pynamodb connection). Every AWS call the product routes make goes through pynamodb (the
    token check fetches the JWKS over HTTP, not an AWS API, once per container), so this is
    their whole AWS cost; a route that adds another AWS client needs a counter of its own.
    """
    calls: Counter[str] = Counter()

    def count(sender: Any, operation_name: str, **_: Any) -> None:
        calls[operation_name] += 1

    pre_dynamodb_send.connect(count, weak=False)
    try:
        yield calls
    finally:
        pre_dynamodb_send.disconnect(count)


@pytest.fixture
def orders_queue(stack) -> Iterator[OrdersQueue]:
    queue = OrdersQueue(stack.client("sqs"), stack.provisioned.env()["ORDERS_QUEUE"], "us-east-1")
    queue.drain()
    yield queue
    queue.forget_received()
