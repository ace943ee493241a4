"""What provisioning created: each resource's Ref and attributes, and lookups of queues and topics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from devstack.event_rules import StreamMapping
from devstack.resource_types import (
    DYNAMODB_TABLE,
    EVENT_BUS,
    EVENT_SOURCE_MAPPING,
    NO_SUCH_QUEUE,
    S3_BUCKET,
    SNS_TOPIC,
    SQS_QUEUE,
    STATE_MACHINE,
    USER_POOL,
    USER_POOL_CLIENT,
    error_code,
    local_client,
)
from devstack.template import StackIdentity
from infra.resources import env_var_name

__all__ = ["Provisioned", "ProvisionedResource", "UnknownResourceError"]


class UnknownResourceError(LookupError):
    """No queue or topic answers to that logical id or physical name."""



@dataclass(frozen=True)
class ProvisionedResource:
    """One created resource: what ``Ref`` gives and what ``Fn::GetAtt`` can ask for."""

    logical_id: str
    type: str
    ref: str
    attributes: Mapping[str, str]
    # The evaluated properties, for what the local stack runs itself (stream mappings).
    properties: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Provisioned:
    """The provisioned stack, by logical id in template order."""

    endpoint_url: str
    stack: StackIdentity
    resources: dict[str, ProvisionedResource]
    app_ids: tuple[str, ...]
    _clients: dict[str, BaseClient] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, logical_id: str) -> ProvisionedResource:
        return self.resources[logical_id]

    def env(self) -> dict[str, str]:
        """The app's resource env vars: ``PRODUCTS_TABLE`` -> table name, ``ORDERS_QUEUE`` -> URL, ..."""
        return {env_var_name(i): self.resources[i].ref for i in self.app_ids}

    def stream_mappings(self) -> list[StreamMapping]:
        """The template's DynamoDB stream event source mappings, for the emulator's stream pollers.

        Raises ValueError for a mapping the local poller cannot honour.
        """
        return [StreamMapping.from_properties(r.logical_id, r.ref, r.properties)
                for r in self.resources.values() if r.type == EVENT_SOURCE_MAPPING]

    def summary(self) -> dict[str, Any]:
        """Buckets, tables, queues, topics, state machines, the event bus and the user pool, as
        .devstack/endpoints.json shows them."""
        return {
            "buckets": self._refs_of(S3_BUCKET),
            "tables": self._refs_of(DYNAMODB_TABLE),
            "queues": self._refs_of(SQS_QUEUE),
            "topics": self._refs_of(SNS_TOPIC),
            "state_machines": self._refs_of(STATE_MACHINE),
            "event_bus": next(iter(self._refs_of(EVENT_BUS).values()), None),
            "user_pool_id": next(iter(self._refs_of(USER_POOL).values()), None),
            "user_pool_client_id": next(iter(self._refs_of(USER_POOL_CLIENT).values()), None),
        }

    def queue_url(self, name: str) -> str:
        """URL of a queue named by logical id, else by physical name (also one made outside the template).

        Raises UnknownResourceError.
        """
        found = self._find(SQS_QUEUE, name, "QueueName")
        if found is not None:
            return found
        sqs = self._client("sqs")
        try:
            return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as err:
            if error_code(err) in NO_SUCH_QUEUE:
                raise UnknownResourceError(f"no queue named {name!r}") from None
            raise

    def topic_arn(self, name: str) -> str:
        """ARN of a topic named by logical id, else by physical name (also one made outside the template).

        Raises UnknownResourceError.
        """
        found = self._find(SNS_TOPIC, name, "TopicName")
        if found is not None:
            return found
        for page in self._client("sns").get_paginator("list_topics").paginate():
            for topic in page["Topics"]:
                if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                    return str(topic["TopicArn"])
        raise UnknownResourceError(f"no topic named {name!r}")

    def _refs_of(self, type_: str) -> dict[str, str]:
        return {i: r.ref for i, r in self.resources.items() if r.type == type_}

    def _find(self, type_: str, name: str, name_attribute: str) -> str | None:
        resource = self.resources.get(name)
        if resource is not None and resource.type == type_:
            return resource.ref
        for resource in self.resources.values():
            if resource.type == type_ and resource.attributes.get(name_attribute) == name:
                return resource.ref
        return None

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = local_client(service, self.endpoint_url, self.stack.region)
        return self._clients[service]
