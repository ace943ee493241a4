"""The local stack and the deployed stack cannot drift: what devstack/provision.py creates in
moto from infra/resources.json is read back and compared with the packaged template."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from devstack.provision import Provisioned, provision
from infra.package import ALARM_TOPIC, functions
from infra.resources import load_template
from tests.support.moto import running_moto_server

pytestmark = pytest.mark.timeout(900)

REGION = "us-east-1"
PROVISIONED_TYPES = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::S3::Bucket",
                     "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::Cognito::UserPool",
                     "AWS::Cognito::UserPoolClient", "AWS::SecretsManager::Secret", "AWS::IAM::Role",
                     "AWS::Logs::LogGroup", "AWS::StepFunctions::StateMachine", "AWS::Events::EventBus",
                     "AWS::Events::Archive", "AWS::Events::Rule", "AWS::Lambda::EventSourceMapping"}


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[Provisioned, Callable[[str], Any]]]:
    """infra/resources.json provisioned into a moto server, and a client factory for it."""
    with running_moto_server() as endpoint_url:
        session = boto3.session.Session()

        def client(service: str) -> Any:
            return session.client(service, endpoint_url=endpoint_url, region_name=REGION,
                                  aws_access_key_id="testing", aws_secret_access_key="testing")

        yield provision(load_template(), endpoint_url=endpoint_url, region=REGION), client


def _of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {i: r["Properties"] for i, r in template["Resources"].items() if r["Type"] == type_}


def _ref_id(value: dict[str, Any]) -> str:
    return str(value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0])


def test_the_local_stack_has_exactly_the_templates_tables_queues_buckets_topics_and_user_pool(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, _ = local
    deployed = {i for i, r in template["Resources"].items() if r["Type"] in PROVISIONED_TYPES}
    # Roles and log groups that packaging adds come with the functions and the API, which the
    # local stack runs itself instead of deploying; the state machine's are in the one definition.
    deployed -= {i for i, r in template["Resources"].items()
                 if r["Type"] in {"AWS::IAM::Role", "AWS::Logs::LogGroup"} and i not in load_template()["Resources"]}

    # The alarms' topic is the only one the app never uses: it exists only on AWS.
    assert set(provisioned.resources) == deployed - {ALARM_TOPIC}


def test_tables_have_the_templates_keys_indexes_billing_and_ttl(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    ddb = aws("dynamodb")
    for logical_id, props in _of_type(template, "AWS::DynamoDB::Table").items():
        table = ddb.describe_table(TableName=provisioned[logical_id].ref)["Table"]

        assert table["KeySchema"] == props["KeySchema"], logical_id
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
        assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
        local_indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table.get("GlobalSecondaryIndexes", [])}
        assert local_indexes == {i["IndexName"]: (i["KeySchema"], i["Projection"])
                                 for i in props.get("GlobalSecondaryIndexes", [])}, logical_id
        ttl = ddb.describe_time_to_live(TableName=provisioned[logical_id].ref)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in props:
            assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
            assert ttl["TimeToLiveStatus"] == "ENABLED"
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_queues_have_the_templates_visibility_retention_and_redrive(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    sqs = aws("sqs")
    for logical_id, props in _of_type(template, "AWS::SQS::Queue").items():
        attributes = sqs.get_queue_attributes(QueueUrl=provisioned[logical_id].ref, AttributeNames=["All"])["Attributes"]

        assert int(attributes["VisibilityTimeout"]) == props.get("VisibilityTimeout", 30), logical_id
        assert int(attributes["MessageRetentionPeriod"]) == props["MessageRetentionPeriod"], logical_id
        if "RedrivePolicy" in props:
            redrive = json.loads(attributes["RedrivePolicy"])
            target = _ref_id(props["RedrivePolicy"]["deadLetterTargetArn"])
            assert redrive["deadLetterTargetArn"] == provisioned[target].attributes["Arn"]
            assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]
        else:
            assert "RedrivePolicy" not in attributes


def test_subscriptions_deliver_the_templates_topics_to_the_templates_queues(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    sns = aws("sns")
    subscriptions = _of_type(template, "AWS::SNS::Subscription")

    assert subscriptions
    for logical_id, props in subscriptions.items():
        topic_arn = provisioned[_ref_id(props["TopicArn"])].ref
        (found,) = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        assert (found["Protocol"], found["Endpoint"]) == (
            props["Protocol"], provisioned[_ref_id(props["Endpoint"])].attributes["Arn"]), logical_id
        attributes = sns.get_subscription_attributes(SubscriptionArn=found["SubscriptionArn"])["Attributes"]
        assert attributes["RawMessageDelivery"] == str(props["RawMessageDelivery"]).lower()


def test_buckets_notify_the_templates_queues_for_the_templates_prefixes_and_the_queues_let_them(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    s3, sqs = aws("s3"), aws("sqs")
    for logical_id, props in _of_type(template, "AWS::S3::Bucket").items():
        bucket = provisioned[logical_id].ref
        found = s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
        wanted = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])

        assert [(c["QueueArn"], c["Events"], c["Filter"]["Key"]["FilterRules"][0]["Value"]) for c in found] == [
            (provisioned[_ref_id(w["Queue"])].attributes["Arn"], [w["Event"]], w["Filter"]["S3Key"]["Rules"][0]["Value"])
            for w in wanted], logical_id
        for w in wanted:
            policy = json.loads(sqs.get_queue_attributes(QueueUrl=provisioned[_ref_id(w["Queue"])].ref,
                                                         AttributeNames=["Policy"])["Attributes"]["Policy"])
            assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"
        (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        (template_rule,) = props["LifecycleConfiguration"]["Rules"]
        assert rule["AbortIncompleteMultipartUpload"] == template_rule["AbortIncompleteMultipartUpload"]


def test_secrets_have_the_templates_names_and_a_generated_value_of_its_length(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    sm = aws("secretsmanager")
    secrets = _of_type(template, "AWS::SecretsManager::Secret")

    assert secrets
    for logical_id, props in secrets.items():
        described = sm.describe_secret(SecretId=provisioned[logical_id].ref)
        value = sm.get_secret_value(SecretId=provisioned[logical_id].ref)["SecretString"]
        assert described["Name"] == props["Name"]["Fn::Sub"].replace("${AWS::StackName}", provisioned.stack.name)
        assert len(value) == props["GenerateSecretString"]["PasswordLength"], logical_id


def test_every_function_is_given_the_env_var_names_the_local_stack_gives_the_app(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, _ = local
    local_names = set(provisioned.env())
    for logical_id in functions(template).values():
        variables = template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        assert {k for k, v in variables.items() if isinstance(v, dict)} == local_names, logical_id


def test_state_machines_run_the_templates_definition_with_its_substitutions_and_role(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    sfn = aws("stepfunctions")
    machines = _of_type(template, "AWS::StepFunctions::StateMachine")

    assert machines
    for logical_id, props in machines.items():
        described = sfn.describe_state_machine(stateMachineArn=provisioned[logical_id].ref)
        definition = json.dumps(props["Definition"])
        for name, value in props["DefinitionSubstitutions"].items():
            # ${AWS::StackName}-<handler>: the function names the local stack gives its containers.
            arn = value["Fn::Sub"].replace("${AWS::Partition}", "aws").replace(
                "${AWS::Region}", provisioned.stack.region).replace("${AWS::AccountId}", provisioned.stack.account_id
            ).replace("${AWS::StackName}", provisioned.stack.name)
            definition = definition.replace("${" + name + "}", arn)
        assert json.loads(described["definition"]) == json.loads(definition), logical_id
        assert described["type"] == props["StateMachineType"]
        role_id = props["RoleArn"]["Fn::GetAtt"][0]
        assert described["roleArn"] == provisioned[role_id].attributes["Arn"]


def test_the_bus_its_archive_and_its_rules_route_as_the_templates_do(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, aws = local
    events = aws("events")
    buses = _of_type(template, "AWS::Events::EventBus")
    rules = _of_type(template, "AWS::Events::Rule")

    assert buses and rules
    for logical_id, props in buses.items():
        name = props["Name"]["Fn::Sub"].replace("${AWS::StackName}", provisioned.stack.name)
        assert events.describe_event_bus(Name=name)["Arn"] == provisioned[logical_id].attributes["Arn"]
    for logical_id, props in _of_type(template, "AWS::Events::Archive").items():
        archive = events.describe_archive(ArchiveName=provisioned[logical_id].ref)
        assert archive["EventSourceArn"] == provisioned[_ref_id(props["SourceArn"])].attributes["Arn"]
        assert archive["RetentionDays"] == props["RetentionDays"]
    for logical_id, props in rules.items():
        bus = provisioned[_ref_id(props["EventBusName"])].ref
        name = provisioned[logical_id].ref.split("|")[-1]
        rule = events.describe_rule(Name=name, EventBusName=bus)
        targets = events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]
        assert (json.loads(rule["EventPattern"]), rule["State"]) == (props["EventPattern"], props["State"]), logical_id
        assert [(t["Arn"], t.get("RetryPolicy"), t.get("DeadLetterConfig", {}).get("Arn")) for t in targets] == [
            (provisioned[_ref_id(t["Arn"])].attributes["Arn"], t.get("RetryPolicy"),
             provisioned[_ref_id(t["DeadLetterConfig"]["Arn"])].attributes["Arn"] if "DeadLetterConfig" in t else None)
            for t in props["Targets"]], logical_id


def test_the_stream_pollers_run_the_templates_mappings(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, _ = local
    mappings = {m.logical_id: m for m in provisioned.stream_mappings()}
    deployed = _of_type(template, "AWS::Lambda::EventSourceMapping")

    assert deployed and set(mappings) == set(deployed)
    for logical_id, props in deployed.items():
        local_mapping = mappings[logical_id]
        assert local_mapping.stream_arn == provisioned[_ref_id(props["EventSourceArn"])].attributes["StreamArn"]
        assert (local_mapping.batch_size, local_mapping.window_seconds, local_mapping.bisect_on_error,
                local_mapping.maximum_retry_attempts, local_mapping.maximum_record_age_seconds,
                local_mapping.starting_position) == (
            props["BatchSize"], props["MaximumBatchingWindowInSeconds"], props["BisectBatchOnFunctionError"],
            props["MaximumRetryAttempts"], props["MaximumRecordAgeInSeconds"], props["StartingPosition"]), logical_id
        assert local_mapping.report_batch_item_failures == ("ReportBatchItemFailures" in props["FunctionResponseTypes"])
        assert local_mapping.on_failure == provisioned[
            _ref_id(props["DestinationConfig"]["OnFailure"]["Destination"])].attributes["Arn"]


def test_every_stream_mapping_names_a_function_that_packaging_deploys(
        template: dict[str, Any], local: tuple[Provisioned, Any]) -> None:
    provisioned, _ = local
    # Chalice names functions "<stack>-<handler>"; CloudFormation fails a mapping on any other name,
    # and the local stack refuses to start with one.
    deployed_functions = {f"{provisioned.stack.name}-{name}" for name in functions(template)}

    assert {m.logical_id: m.function_name for m in provisioned.stream_mappings()
            if m.function_name not in deployed_functions} == {}
