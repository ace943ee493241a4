"""The fault suite's world: the app against one moto server provisioned from infra/resources.json
(the fixtures of tests/integration/app), a fresh container per test, emptied queues, and delivery
as Lambda does it.

Its own pytest process (`make test`): its hooks and its deliveries must not meet the other
integration tests' consumers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.config import load_settings
from tests.integration.app.conftest import api, app_logs, cognito, new_user, stack  # noqa: F401 - fixtures
from tests.integration.faults.delivery import Delivery
from tests.support.app_wiring import install_app
from tests.support.sqs import LambdaQueue

CHUNK_ROWS = 4  # a dozen rows make three chunks


@dataclass
class World:
    stack: Any
    api: Any
    delivery: Delivery
    new_user: Any
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return self.stack.client(service)


@pytest.fixture
def world(stack, api, new_user) -> Iterator[World]:  # noqa: F811 - the imported fixtures
    from app import app

    env = stack.provisioned.env()
    sqs = stack.client("sqs")
    for name, url in env.items():
        if name.endswith("_QUEUE"):
            LambdaQueue(sqs, url).drain()  # PurgeQueue is allowed once a minute
    # A container of its own: new clients (the hooks of an earlier test are gone with them).
    install_app(dataclasses.replace(load_settings(), import_chunk_rows=CHUNK_ROWS))
    try:
        yield World(stack, api, Delivery(app, sqs, stack.provisioned.queue_url), new_user, env)
    finally:
        install_app()
