"""What the provisioner refuses before it creates anything, and how it names what it created."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devstack.provision import Provisioned, ProvisionedResource, TemplateError, provision
from devstack.template import StackIdentity
from infra.resources import load_template

# Nothing listens here: a test that reached the network would fail with a connection error.
UNREACHABLE = "http://127.0.0.1:9"


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def _refused(template: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        provision(template, endpoint_url=UNREACHABLE)


def test_an_unsupported_resource_type_is_refused_naming_the_resource() -> None:
    template = load_template()
    template["Resources"]["Resizer"] = {"Type": "AWS::Lambda::Function", "Properties": {}}

    _refused(template, "Resizer: resource type AWS::Lambda::Function is not supported")


def test_an_unknown_property_is_refused_rather_than_skipped() -> None:
    template = _template(Jobs={"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30, "Colour": "red"}})

    _refused(template, "Jobs: AWS::SQS::Queue properties not supported locally: Colour")


def test_an_unsupported_intrinsic_is_refused_naming_the_resource() -> None:
    template = _template(Jobs={"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Select": [0, ["a"]]}}})

    _refused(template, "Jobs: intrinsic Fn::Select is not supported")


def test_an_attribute_the_type_does_not_have_is_refused() -> None:
    template = _template(
        Topic={"Type": "AWS::SNS::Topic"},
        Jobs={"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::GetAtt": ["Topic", "QueueUrl"]}}},
    )

    _refused(template, "Jobs: Fn::GetAtt Topic.QueueUrl is not available")


def test_conditions_and_lambda_notifications_are_refused() -> None:
    conditional = _template(Jobs={"Type": "AWS::SQS::Queue", "Condition": "IsProd"})
    template = copy.deepcopy(load_template())
    template["Resources"]["MediaBucket"]["Properties"]["NotificationConfiguration"] = {
        "LambdaConfigurations": [{"Event": "s3:ObjectCreated:*", "Function": "arn:aws:lambda:x"}]
    }

    _refused(conditional, "Jobs: Condition not supported")
    _refused(template, "MediaBucket: NotificationConfiguration LambdaConfigurations not supported")
    _refused({**_template(Jobs={"Type": "AWS::SQS::Queue"}), "Parameters": {}}, "sections not supported locally")


def test_a_lifecycle_rule_the_provisioner_cannot_translate_is_refused_naming_its_keys() -> None:
    template = copy.deepcopy(load_template())
    rules = template["Resources"]["MediaBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    rules.append({"Status": "Enabled", "Transitions": [{"StorageClass": "GLACIER", "TransitionInDays": 30}]})

    _refused(template, "MediaBucket: lifecycle rule keys not supported locally: Transitions")


def test_only_sqs_subscriptions_are_provisioned() -> None:
    template = _template(
        Topic={"Type": "AWS::SNS::Topic"},
        Mail={
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email", "Endpoint": "ops@example.com"},
        },
    )

    _refused(template, "Mail: SNS protocol 'email' is not supported locally")


def test_a_dependency_cycle_is_refused() -> None:
    template = _template(
        A={"Type": "AWS::SQS::Queue", "DependsOn": "B"},
        B={"Type": "AWS::SQS::Queue", "DependsOn": "A"},
    )

    _refused(template, "cycle: A -> B -> A")


SAGA_ARN = "arn:aws:states:r:1:stateMachine:sf-OrderSagaStateMachine"


def _stack() -> Provisioned:
    queue = ProvisionedResource(
        "OrdersQueue", "AWS::SQS::Queue", "http://aws/1/sf-OrdersQueue",
        {"Arn": "arn:q", "QueueName": "sf-OrdersQueue", "QueueUrl": "http://aws/1/sf-OrdersQueue"},
    )
    policy = ProvisionedResource("OrdersQueuePolicy", "AWS::SQS::QueuePolicy", "sf-OrdersQueuePolicy", {})
    topic = ProvisionedResource(
        "EventsTopic", "AWS::SNS::Topic", "arn:aws:sns:r:1:sf-EventsTopic",
        {"TopicArn": "arn:aws:sns:r:1:sf-EventsTopic", "TopicName": "sf-EventsTopic"},
    )
    table = ProvisionedResource("ProductsTable", "AWS::DynamoDB::Table", "sf-ProductsTable", {"Arn": "arn:t"})
    pool = ProvisionedResource("UserPool", "AWS::Cognito::UserPool", "r_pool", {})
    client = ProvisionedResource("UserPoolClient", "AWS::Cognito::UserPoolClient", "client-id", {})
    bucket = ProvisionedResource("MediaBucket", "AWS::S3::Bucket", "sf-media", {})
    saga = ProvisionedResource("OrderSagaStateMachine", "AWS::StepFunctions::StateMachine", SAGA_ARN,
                               {"Arn": SAGA_ARN, "Name": "sf-OrderSagaStateMachine"})
    bus = ProvisionedResource("EventBus", "AWS::Events::EventBus", "sf-events",
                              {"Arn": "arn:aws:events:r:1:event-bus/sf-events", "Name": "sf-events"})
    resources = {r.logical_id: r for r in (queue, policy, topic, table, pool, client, bucket, saga, bus)}
    app_ids = tuple(i for i in resources if i != "OrdersQueuePolicy")
    return Provisioned(UNREACHABLE, StackIdentity("sf", "r", "1"), resources, app_ids)


def test_env_holds_each_app_resources_ref_under_its_upper_snake_name() -> None:
    assert _stack().env() == {
        "ORDERS_QUEUE": "http://aws/1/sf-OrdersQueue",
        "EVENTS_TOPIC": "arn:aws:sns:r:1:sf-EventsTopic",
        "PRODUCTS_TABLE": "sf-ProductsTable",
        "USER_POOL": "r_pool",
        "USER_POOL_CLIENT": "client-id",
        "MEDIA_BUCKET": "sf-media",
        "ORDER_SAGA_STATE_MACHINE": SAGA_ARN,
        "EVENT_BUS": "sf-events",
    }


def test_the_summary_groups_resources_by_kind_for_endpoints_json() -> None:
    assert _stack().summary() == {
        "buckets": {"MediaBucket": "sf-media"},
        "tables": {"ProductsTable": "sf-ProductsTable"},
        "queues": {"OrdersQueue": "http://aws/1/sf-OrdersQueue"},
        "topics": {"EventsTopic": "arn:aws:sns:r:1:sf-EventsTopic"},
        "state_machines": {"OrderSagaStateMachine": SAGA_ARN},
        "event_bus": "sf-events",
        "user_pool_id": "r_pool",
        "user_pool_client_id": "client-id",
    }


def test_queues_and_topics_resolve_by_logical_id_first_then_physical_name() -> None:
    stack = _stack()

    assert stack.queue_url("OrdersQueue") == stack.queue_url("sf-OrdersQueue") == "http://aws/1/sf-OrdersQueue"
    assert stack.topic_arn("EventsTopic") == stack.topic_arn("sf-EventsTopic") == "arn:aws:sns:r:1:sf-EventsTopic"


@pytest.mark.parametrize("props, message", [
    ({"SecretString": "x", "GenerateSecretString": {}}, "SecretString and GenerateSecretString exclude each other"),
    ({"GenerateSecretString": {"PasswordLength": 32, "Alphabet": "ab"}}, "GenerateSecretString keys not supported"
                                                                         " locally: Alphabet"),
    ({"GenerateSecretString": {"GenerateStringKey": "password"}}, "SecretStringTemplate and GenerateStringKey go"),
])
def test_a_secret_cloudformation_would_not_create_is_refused(props: dict[str, Any], message: str) -> None:
    _refused(_template(Key={"Type": "AWS::SecretsManager::Secret", "Properties": props}), f"Key: {message}")
