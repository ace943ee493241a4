"""The fault suite's world: the app against one moto server provisioned from infra/resources.json
(the fixtures of tests/integration/app), a fresh container per test, emptied queues, and delivery
as Lambda does it.

Its own pytest process (`make test`): its hooks and its deliveries must not meet the other
integration tests' consumers.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import urllib3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.config import load_settings
from tests.integration.app.conftest import api, app_logs, cognito, new_user, stack  # noqa: F401 - fixtures
from tests.integration.faults.delivery import Delivery
from tests.support.app_wiring import install_app
from tests.support.sqs import LambdaQueue

CHUNK_ROWS = 4  # a dozen rows make three chunks


class AppClock:
    """The app container's time: the wall clock, moved on by what a scenario lets pass."""

    def __init__(self) -> None:
        self._ahead = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self._ahead

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._ahead += timedelta(seconds=seconds)


@dataclass
class World:
    stack: Any
    api: Any
    delivery: Delivery
    new_user: Any
    env: dict[str, str]
    api_app: Any  # the Chalice app: its handler_map is what Lambda invokes
    clock: AppClock = field(default_factory=AppClock)

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def payments(self, method: str, path: str, body: Any = None) -> Any:
        """Ask the payment provider's stand-in (its API with its key, or its /_devstack side)."""
        response = urllib3.request(method, self.stack.payments.url + path, json=body,
                                   headers={"Authorization": f"Bearer {self.stack.payments.api_key}"})
        return json.loads(response.data)

    def mail_about(self, order_id: str) -> list[Any]:
        """What SES (moto, in this process) accepted whose subject names the order."""
        return [m for m in ses_backends[DEFAULT_ACCOUNT_ID][self.stack.provisioned.stack.region].sent_messages
                if order_id in getattr(m, "subject", "")]


@pytest.fixture
def world(stack, api, new_user) -> Iterator[World]:  # noqa: F811 - the imported fixtures
    from app import app

    env = stack.provisioned.env()
    sqs = stack.client("sqs")
    for name, url in env.items():
        if name.endswith("_QUEUE"):
            LambdaQueue(sqs, url).drain()  # PurgeQueue is allowed once a minute
    # A container of its own: new clients (the hooks of an earlier test are gone with them).
    clock = AppClock()
    install_app(dataclasses.replace(load_settings(), import_chunk_rows=CHUNK_ROWS), clock=clock)
    try:
        yield World(stack, api, Delivery(app, sqs, stack.provisioned.queue_url), new_user, env, app, clock)
    finally:
        install_app()
