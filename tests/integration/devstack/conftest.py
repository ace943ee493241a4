"""The local stack's parts against an in-process moto server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from devstack.provision import Provisioned, provision
from infra.resources import load_template
from tests.support.moto import running_moto_server

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto server shared by the tests of one module."""
    with running_moto_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture(scope="module")
def aws(moto_server: str) -> Callable[[str], Any]:
    """``aws("sqs")``: a boto3 client for the moto server."""
    session = boto3.session.Session()

    def client(service: str) -> Any:
        return session.client(
            service, endpoint_url=moto_server, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    return client


@pytest.fixture(scope="module")
def provisioned(moto_server: str) -> Provisioned:
    """infra/resources.json, provisioned once per module."""
    return provision(load_template(), endpoint_url=moto_server, region=REGION)
