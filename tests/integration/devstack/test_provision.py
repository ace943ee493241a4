"""infra/resources.json provisioned into moto: what the app and the AWS CLI then find there."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.provision import ProvisionError, Provisioned, TemplateError, UnknownResourceError, provision
from infra.resources import app_resources, env_var_name, load_template

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def _of_type(type_: str) -> list[str]:
    return [i for i, r in RESOURCES.items() if r["Type"] == type_]


def _receive_all(
    sqs: Any, queue_url: str, until: Callable[[list[dict]], bool], timeout: float = 10, wait_seconds: int = 1
) -> list[dict]:
    """Messages received (and deleted) until ``until(messages)`` holds, time runs out, or, after
    the deadline, the queue has nothing more to give."""
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    while not until(messages):
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)
        if not batch and time.monotonic() >= deadline:
            break
    return messages


def _drain(sqs: Any, queue_url: str) -> list[dict]:
    """Whatever the queue holds right now, received and deleted."""
    return _receive_all(sqs, queue_url, until=lambda m: False, timeout=0, wait_seconds=0)


def _s3_keys(messages: list[dict]) -> list[str]:
    keys = []
    for message in messages:
        body = json.loads(message["Body"])
        if body.get("Event") == "s3:TestEvent":
            continue
        keys.extend(record["s3"]["object"]["key"] for record in body["Records"])
    return keys


def test_every_app_resource_reaches_the_app_as_an_env_var_holding_its_ref(provisioned: Provisioned) -> None:
    env = provisioned.env()

    assert set(env) == {env_var_name(i) for i in app_resources(TEMPLATE)}
    assert env["PRODUCTS_TABLE"] == "storefront-dev-ProductsTable"
    assert env["ORDERS_QUEUE"] == f"{provisioned.endpoint_url}/123456789012/storefront-dev-OrdersQueue"
    assert env["UPLOADS_BUCKET"] == "storefront-dev-uploads-123456789012"
    assert env["IMPORT_CHUNKS_TOPIC"] == "arn:aws:sns:us-east-1:123456789012:storefront-dev-ImportChunksTopic"
    assert env["USER_POOL"] == provisioned.summary()["user_pool_id"]
    assert "IMAGE_UPLOADS_QUEUE_POLICY" not in env and "IMPORT_CHUNKS_SUBSCRIPTION" not in env


def test_tables_have_the_keys_indexes_billing_and_ttl_the_template_defines(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    ddb = aws("dynamodb")
    for logical_id in _of_type("AWS::DynamoDB::Table"):
        props = RESOURCES[logical_id]["Properties"]
        table = ddb.describe_table(TableName=provisioned[logical_id].ref)["Table"]

        assert table["KeySchema"] == props["KeySchema"], logical_id
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", logical_id
        indexes = {i["IndexName"]: i["KeySchema"] for i in table.get("GlobalSecondaryIndexes", [])}
        assert indexes == {i["IndexName"]: i["KeySchema"] for i in props.get("GlobalSecondaryIndexes", [])}
        ttl = ddb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in props:
            assert ttl["TimeToLiveStatus"] == "ENABLED", logical_id
            assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"], logical_id
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED", logical_id
        assert provisioned[logical_id].attributes["Arn"] == table["TableArn"]

    products = ddb.describe_table(TableName=provisioned["ProductsTable"].ref)["Table"]
    assert {i["IndexName"] for i in products["GlobalSecondaryIndexes"]} == {"owner-index", "catalog-index"}


def test_each_work_queue_redrives_to_its_own_dead_letter_queue(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    sqs = aws("sqs")
    work_queues = [i for i in _of_type("AWS::SQS::Queue") if "RedrivePolicy" in RESOURCES[i]["Properties"]]
    assert set(work_queues) == {"ImageUploadsQueue", "OrdersQueue", "ImportUploadsQueue", "ImportChunksQueue",
                                "DomainEventsFailureQueue", "SalesEventsQueue", "LowStockQueue"}

    for logical_id in work_queues:
        props = RESOURCES[logical_id]["Properties"]
        attributes = sqs.get_queue_attributes(QueueUrl=provisioned.queue_url(logical_id), AttributeNames=["All"])[
            "Attributes"
        ]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == provisioned[f"{logical_id}DeadLetterQueue"].attributes["Arn"]
        assert int(redrive["maxReceiveCount"]) == 5
        assert attributes["VisibilityTimeout"] == str(props["VisibilityTimeout"])
        assert attributes["MessageRetentionPeriod"] == str(props["MessageRetentionPeriod"])


def test_buckets_are_private_encrypted_and_abort_abandoned_multipart_uploads(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    s3 = aws("s3")
    buckets = _of_type("AWS::S3::Bucket")
    assert set(buckets) == {"UploadsBucket", "MediaBucket", "ImportsBucket"}

    for logical_id in buckets:
        name = provisioned[logical_id].ref
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True)
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        assert rule["Status"] == "Enabled"
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_queue_policies_let_their_sources_send(provisioned: Provisioned, aws: Callable[[str], Any]) -> None:
    queue_url = provisioned.queue_url("ImageUploadsQueue")
    attributes = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"]
    policy = json.loads(attributes["Policy"])

    statement = policy["Statement"][0]
    assert statement["Resource"] == provisioned["ImageUploadsQueue"].attributes["Arn"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == "arn:aws:s3:::storefront-dev-uploads-123456789012"


def test_an_object_created_under_uploads_is_announced_on_the_image_uploads_queue_and_no_other_prefix_is(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    s3, sqs = aws("s3"), aws("sqs")
    bucket = provisioned["UploadsBucket"].ref

    s3.put_object(Bucket=bucket, Key="elsewhere/cat.jpg", Body=b"not an upload")
    s3.put_object(Bucket=bucket, Key="uploads/p1/cat.jpg", Body=b"an upload")
    messages = _receive_all(
        sqs, provisioned.queue_url("ImageUploadsQueue"), until=lambda m: any("cat.jpg" in k for k in _s3_keys(m))
    )
    # S3 announces an object while storing it, so an "elsewhere" event would be queued by now.
    messages += _drain(sqs, provisioned.queue_url("ImageUploadsQueue"))

    assert _s3_keys(messages) == ["uploads%2Fp1%2Fcat.jpg"]


def test_a_message_published_to_the_import_chunks_topic_arrives_raw_on_the_import_chunks_queue(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    body = json.dumps({"job_id": "j-1", "chunk": 3})

    aws("sns").publish(TopicArn=provisioned.topic_arn("ImportChunksTopic"), Message=body)
    messages = _receive_all(aws("sqs"), provisioned.queue_url("ImportChunksQueue"), until=lambda m: bool(m))

    assert [m["Body"] for m in messages] == [body]


def test_the_user_pool_client_signs_in_users_with_tokens_issued_by_the_pool(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    idp = aws("cognito-idp")
    pool_id, client_id = provisioned.summary()["user_pool_id"], provisioned.summary()["user_pool_client_id"]
    pool = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    assert pool["Name"] == "storefront-dev-users"
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert set(client["ExplicitAuthFlows"]) == set(RESOURCES["UserPoolClient"]["Properties"]["ExplicitAuthFlows"])

    idp.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool_id, Username="alice", Password="Correct-Horse-9", Permanent=True)
    tokens = idp.admin_initiate_auth(
        UserPoolId=pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-9"},
    )["AuthenticationResult"]
    payload = tokens["IdToken"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    assert claims["iss"] == provisioned["UserPool"].attributes["ProviderURL"]
    assert claims["aud"] == client_id


def test_provisioning_again_reuses_every_resource_and_returns_the_same_values(
    provisioned: Provisioned, moto_server: str, aws: Callable[[str], Any]
) -> None:
    def counts() -> dict[str, int]:
        idp, sns = aws("cognito-idp"), aws("sns")
        return {
            "queues": len(aws("sqs").list_queues()["QueueUrls"]),
            "tables": len(aws("dynamodb").list_tables()["TableNames"]),
            "buckets": len(aws("s3").list_buckets()["Buckets"]),
            "topics": len(sns.list_topics()["Topics"]),
            "subscriptions": len(sns.list_subscriptions()["Subscriptions"]),
            "user_pools": len(idp.list_user_pools(MaxResults=60)["UserPools"]),
            "clients": len(
                idp.list_user_pool_clients(UserPoolId=provisioned.summary()["user_pool_id"])["UserPoolClients"]
            ),
            "secrets": len(aws("secretsmanager").list_secrets()["SecretList"]),
            "buses": len(aws("events").list_event_buses()["EventBuses"]),
            "archives": len(aws("events").list_archives()["Archives"]),
            "rules": len(aws("events").list_rules(EventBusName=provisioned["EventBus"].ref)["Rules"]),
            "targets": sum(len(aws("events").list_targets_by_rule(
                Rule=r["Name"], EventBusName=provisioned["EventBus"].ref)["Targets"])
                for r in aws("events").list_rules(EventBusName=provisioned["EventBus"].ref)["Rules"]),
        }

    sqs = aws("sqs")
    notified_queues = [provisioned.queue_url("ImageUploadsQueue"), provisioned.queue_url("ImportUploadsQueue")]
    for url in notified_queues:
        _drain(sqs, url)
    before = counts()
    secret = aws("secretsmanager").get_secret_value(SecretId=provisioned["PaymentsApiKeySecret"].ref)["SecretString"]

    again = provision(load_template(), endpoint_url=moto_server, region="us-east-1")

    assert again.resources == provisioned.resources
    # The value put into a secret (the stand-in's key, locally; the operator's on AWS) stays.
    assert aws("secretsmanager").get_secret_value(
        SecretId=provisioned["PaymentsApiKeySecret"].ref)["SecretString"] == secret
    assert again.env() == provisioned.env()
    assert counts() == before
    # Re-putting a bucket's notification configuration would announce itself with an s3:TestEvent.
    assert [_drain(sqs, url) for url in notified_queues] == [[], []]


def test_a_queue_is_found_by_logical_id_by_physical_name_or_outside_the_template(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    outside = aws("sqs").create_queue(QueueName="made-by-a-test-app")["QueueUrl"]

    assert provisioned.queue_url("OrdersQueue") == provisioned.env()["ORDERS_QUEUE"]
    assert provisioned.queue_url("storefront-dev-OrdersQueue") == provisioned.env()["ORDERS_QUEUE"]
    assert provisioned.queue_url("made-by-a-test-app") == outside
    with pytest.raises(UnknownResourceError):
        provisioned.queue_url("NoSuchQueue")


def test_a_topic_is_found_by_logical_id_by_physical_name_or_outside_the_template(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    outside = aws("sns").create_topic(Name="made-by-a-test-app")["TopicArn"]

    assert provisioned.topic_arn("ImportChunksTopic") == provisioned.env()["IMPORT_CHUNKS_TOPIC"]
    assert provisioned.topic_arn("storefront-dev-ImportChunksTopic") == provisioned.env()["IMPORT_CHUNKS_TOPIC"]
    assert provisioned.topic_arn("made-by-a-test-app") == outside
    with pytest.raises(UnknownResourceError):
        provisioned.topic_arn("NoSuchTopic")


def test_the_aws_cli_sees_the_queues_tables_and_buckets_the_app_uses(provisioned: Provisioned) -> None:
    def aws_cli(*args: str) -> dict:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        }
        env.pop("AWS_ENDPOINT_URL", None)
        env.pop("AWS_PROFILE", None)
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "aws"), "--endpoint-url", provisioned.endpoint_url, "--output", "json",
             *args],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    summary = provisioned.summary()

    assert set(summary["queues"].values()) <= set(aws_cli("sqs", "list-queues")["QueueUrls"])
    assert set(summary["tables"].values()) <= set(aws_cli("dynamodb", "list-tables")["TableNames"])
    assert set(summary["buckets"].values()) <= {b["Name"] for b in aws_cli("s3api", "list-buckets")["Buckets"]}


def test_a_fifo_queue_gets_a_fifo_name_and_its_fifo_attributes(moto_server: str, aws: Callable[[str], Any]) -> None:
    template = {
        "Resources": {
            "LedgerQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"FifoQueue": True, "ContentBasedDeduplication": True, "VisibilityTimeout": 45},
            }
        }
    }

    stack = provision(template, endpoint_url=moto_server, stack_name="fifo-test")
    attributes = aws("sqs").get_queue_attributes(QueueUrl=stack.queue_url("LedgerQueue"), AttributeNames=["All"])[
        "Attributes"
    ]

    assert stack["LedgerQueue"].attributes["QueueName"] == "fifo-test-LedgerQueue.fifo"
    assert (attributes["FifoQueue"], attributes["ContentBasedDeduplication"]) == ("true", "true")
    assert attributes["VisibilityTimeout"] == "45"


def test_a_resource_the_stand_in_refuses_is_reported_by_its_logical_id(moto_server: str) -> None:
    template = {"Resources": {"BadBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "ab"}}}}

    with pytest.raises(ProvisionError, match=r"BadBucket \(AWS::S3::Bucket\)"):
        provision(template, endpoint_url=moto_server)


def test_the_event_bus_is_named_by_the_template_and_reaches_the_app_and_the_summary(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    bus = aws("events").describe_event_bus(Name="storefront-dev-events")

    assert provisioned["EventBus"].ref == "storefront-dev-events"
    assert provisioned["EventBus"].attributes["Arn"] == bus["Arn"]
    assert provisioned.env()["EVENT_BUS"] == "storefront-dev-events"
    assert provisioned.summary()["event_bus"] == "storefront-dev-events"


def test_the_archive_keeps_the_buses_events_for_the_templates_retention(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    props = RESOURCES["EventArchive"]["Properties"]
    archive = aws("events").describe_archive(ArchiveName=provisioned["EventArchive"].ref)

    assert archive["EventSourceArn"] == provisioned["EventBus"].attributes["Arn"]
    assert (archive["State"], archive["RetentionDays"]) == ("ENABLED", props["RetentionDays"])


def test_rules_on_the_bus_have_the_templates_patterns_and_sqs_targets_with_retries_and_dead_letters(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    events = aws("events")
    bus = provisioned["EventBus"].ref
    rules = _of_type("AWS::Events::Rule")

    assert rules
    for logical_id in rules:
        props = RESOURCES[logical_id]["Properties"]
        bus_name, rule_name = provisioned[logical_id].ref.split("|")
        rule = events.describe_rule(Name=rule_name, EventBusName=bus_name)
        targets = events.list_targets_by_rule(Rule=rule_name, EventBusName=bus)["Targets"]

        assert bus_name == bus
        assert (json.loads(rule["EventPattern"]), rule["State"]) == (props["EventPattern"], props["State"])
        assert [(t["Id"], t["Arn"], t["RetryPolicy"], t["DeadLetterConfig"]["Arn"]) for t in targets] == [
            (t["Id"], provisioned[t["Arn"]["Fn::GetAtt"][0]].attributes["Arn"], t["RetryPolicy"],
             provisioned[t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]].attributes["Arn"])
            for t in props["Targets"]], logical_id


def test_stream_mappings_are_recorded_for_the_local_poller_and_not_created_in_moto(
    provisioned: Provisioned, aws: Callable[[str], Any]
) -> None:
    mappings = {m.logical_id: m for m in provisioned.stream_mappings()}

    assert set(mappings) == set(_of_type("AWS::Lambda::EventSourceMapping"))
    products = mappings["ProductChangesMapping"]
    assert products.stream_arn == provisioned["ProductsTable"].attributes["StreamArn"]
    assert products.function_name == "storefront-dev-publish_product_events"
    assert (products.starting_position, products.batch_size, products.window_seconds) == ("TRIM_HORIZON", 100, 0)
    assert (products.bisect_on_error, products.maximum_retry_attempts, products.maximum_record_age_seconds,
            products.report_batch_item_failures) == (True, 5, 21600, True)
    assert products.on_failure == provisioned["DomainEventsFailureQueue"].attributes["Arn"]
    # A moto mapping would empty the stream's shard into moto's Lambda (which needs Docker).
    assert aws("lambda").list_event_source_mappings()["EventSourceMappings"] == []


@pytest.mark.parametrize(("properties", "refusal"), [
    ({"FilterCriteria": {"Filters": [{"Pattern": "{}"}]}}, "FilterCriteria"),
    ({"ParallelizationFactor": 2}, "ParallelizationFactor"),
    ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPosition"),
    ({"MaximumRecordAgeInSeconds": 30}, "MaximumRecordAgeInSeconds"),
])
def test_a_stream_mapping_setting_the_local_poller_cannot_honour_is_refused_before_anything_is_made(
    moto_server: str, properties: dict[str, Any], refusal: str
) -> None:
    mapping = {**RESOURCES["ProductChangesMapping"]["Properties"], **properties}
    template = {"Resources": {"ProductsTable": RESOURCES["ProductsTable"], "DomainEventsFailureQueue": {
        "Type": "AWS::SQS::Queue"}, "ProductChangesMapping": {
        "Type": "AWS::Lambda::EventSourceMapping", "Properties": mapping}}}

    with pytest.raises(TemplateError, match=refusal):
        provision(template, endpoint_url=moto_server, stack_name="refused")


@pytest.mark.parametrize(("pattern", "refusal"), [
    ({"source": ["a"], "detail": {"n": [{"between": [0, 5]}]}}, "between"),
    ({"source": "a"}, "must be a list"),
])
def test_a_rule_pattern_with_an_operator_neither_eventbridge_nor_the_local_bus_knows_is_refused(
    moto_server: str, pattern: dict[str, Any], refusal: str
) -> None:
    template = {"Resources": {"Rule": {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": pattern}}}}

    with pytest.raises(TemplateError, match=refusal):
        provision(template, endpoint_url=moto_server, stack_name="refused")
