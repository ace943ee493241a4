"""The resource types the local provisioner creates, each the way CloudFormation creates it.

Why one file of ~700 lines: it is one table (`SUPPORTED_TYPES`) and, per resource type, the
creator and the property lists it accepts, all sharing one small contract (`ResourceContext` in,
`Created` out). Each section mirrors CloudFormation's property names for one service and is read
against that service's CloudFormation page; splitting by service would scatter the table and the
shared helpers without making any part shorter to read.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from devstack.event_rules import STREAM_MAPPING_PROPERTIES, check_stream_mapping
from devstack.template import StackIdentity, TemplateError, physical_name

__all__ = [
    "IGNORED_PROPERTIES",
    "NO_SUCH_QUEUE",
    "SUPPORTED_TYPES",
    "Created",
    "ResourceContext",
    "ResourceType",
    "error_code",
    "local_client",
]

DYNAMODB_TABLE = "AWS::DynamoDB::Table"
SQS_QUEUE = "AWS::SQS::Queue"
SQS_QUEUE_POLICY = "AWS::SQS::QueuePolicy"
S3_BUCKET = "AWS::S3::Bucket"
SNS_TOPIC = "AWS::SNS::Topic"
SNS_SUBSCRIPTION = "AWS::SNS::Subscription"
USER_POOL = "AWS::Cognito::UserPool"
USER_POOL_CLIENT = "AWS::Cognito::UserPoolClient"
IAM_ROLE = "AWS::IAM::Role"
LOG_GROUP = "AWS::Logs::LogGroup"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
SECRET = "AWS::SecretsManager::Secret"
EVENT_BUS = "AWS::Events::EventBus"
EVENT_ARCHIVE = "AWS::Events::Archive"
EVENT_RULE = "AWS::Events::Rule"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"

# Properties with no local meaning: moto neither encrypts, backs up nor bills, and tags change
# no behaviour the app can see.
IGNORED_PROPERTIES: Mapping[str, frozenset[str]] = {
    DYNAMODB_TABLE: frozenset(
        {"PointInTimeRecoverySpecification", "SSESpecification", "ContributorInsightsSpecification", "Tags"}
    ),
    SQS_QUEUE: frozenset({"SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "Tags"}),
    S3_BUCKET: frozenset({"Tags"}),
    SNS_TOPIC: frozenset({"KmsMasterKeyId", "Tags"}),
    USER_POOL: frozenset({"UserPoolTags"}),
    # moto's interpreter keeps its own history; X-Ray segments come from the function containers.
    STATE_MACHINE: frozenset({"LoggingConfiguration", "TracingConfiguration", "Tags"}),
    LOG_GROUP: frozenset({"RetentionInDays", "Tags"}),
    SECRET: frozenset({"KmsKeyId", "Tags"}),
    EVENT_BUS: frozenset({"KmsKeyIdentifier", "Tags"}),
    EVENT_ARCHIVE: frozenset({"KmsKeyIdentifier"}),
}


_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def local_client(service: str, endpoint_url: str, region: str) -> BaseClient:
    """A client for the local stand-in, made from one shared session.

    Each new session reloads botocore's data files, which made provisioning several times
    slower than its calls; sessions are not thread-safe, hence the lock.
    """
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        # The stand-in takes any credentials. The app's (from env) keep both in the same moto
        # account; without them, dummy ones spare a walk of the real credential chain.
        client: BaseClient = _SESSION.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )
        return client


class ResourceContext:
    """What a creator needs: the stack's identity, clients for the stand-in, physical names."""

    def __init__(self, stack: StackIdentity, endpoint_url: str) -> None:
        self.stack = stack
        self.endpoint_url = endpoint_url
        self.clients: dict[str, BaseClient] = {}

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = local_client(service, self.endpoint_url, self.stack.region)
        return self.clients[service]

    def name(self, logical_id: str, *, max_length: int, lowercase: bool = False, suffix: str = "") -> str:
        return physical_name(self.stack.name, logical_id, max_length=max_length, lowercase=lowercase, suffix=suffix)


@dataclass(frozen=True)
class Created:
    ref: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class ResourceType:
    properties: frozenset[str]
    attributes: frozenset[str]
    create: Callable[[ResourceContext, str, dict[str, Any]], Created]
    required: frozenset[str] = frozenset()
    # Checks on the unevaluated properties, so that problems surface before anything is created.
    validate: Callable[[str, Mapping[str, Any]], None] | None = None


NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _attribute_value(value: Any) -> str:
    """SQS and SNS attributes are strings; CloudFormation lets templates give JSON values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _only(props: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k in keys}


# --- DynamoDB ---------------------------------------------------------------------------------

_TABLE_PASS_THROUGH = frozenset(
    {
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "ProvisionedThroughput",
        "LocalSecondaryIndexes",
        "TableClass",
        "DeletionProtectionEnabled",
    }
)


def _create_table(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    ddb = ctx.client("dynamodb")
    name = props.get("TableName") or ctx.name(logical_id, max_length=255)
    try:
        table = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        params = _only(props, _TABLE_PASS_THROUGH)
        params.setdefault("BillingMode", "PROVISIONED")
        if "GlobalSecondaryIndexes" in props:
            params["GlobalSecondaryIndexes"] = [
                {k: v for k, v in index.items() if k != "ContributorInsightsSpecification"}
                for index in props["GlobalSecondaryIndexes"]
            ]
        if "StreamSpecification" in props:
            params["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        table = ddb.create_table(TableName=name, **params)["TableDescription"]
    if "TimeToLiveSpecification" in props:
        _ensure_ttl(ddb, name, props["TimeToLiveSpecification"])
    attributes = {"Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return Created(name, attributes)


def _ensure_ttl(ddb: Any, table_name: str, spec: Mapping[str, Any]) -> None:
    # Real DynamoDB refuses to re-enable TTL that is already on, so change only what differs.
    current = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    enabled = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    wanted = bool(spec.get("Enabled"))
    if wanted == enabled and (not wanted or current.get("AttributeName") == spec["AttributeName"]):
        return
    ddb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"AttributeName": spec["AttributeName"], "Enabled": wanted},
    )


# --- SQS --------------------------------------------------------------------------------------

_QUEUE_ATTRIBUTES = frozenset(
    {
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
    }
)


def _create_queue(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    sqs = ctx.client("sqs")
    fifo = _attribute_value(props.get("FifoQueue", False)) == "true"
    name = props.get("QueueName") or ctx.name(logical_id, max_length=80, suffix=".fifo" if fifo else "")
    attributes = {k: _attribute_value(v) for k, v in _only(props, _QUEUE_ATTRIBUTES).items()}
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as err:
        if error_code(err) not in NO_SUCH_QUEUE:
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    else:
        # FifoQueue cannot change after creation; the rest is brought in line with the template.
        mutable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
        if mutable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _create_queue_policy(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    sqs = ctx.client("sqs")
    policy = _attribute_value(props["PolicyDocument"])
    for url in props["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    return Created(ctx.name(logical_id, max_length=255), {})


# --- S3 ---------------------------------------------------------------------------------------


def _create_bucket(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    s3 = ctx.client("s3")
    name = props.get("BucketName") or ctx.name(logical_id, max_length=63, lowercase=True)
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as err:
        if error_code(err) not in ("404", "NoSuchBucket"):
            raise
        params: dict[str, Any] = {"Bucket": name}
        if ctx.stack.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.stack.region}
        s3.create_bucket(**params)
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(
            Bucket=name, ServerSideEncryptionConfiguration=_encryption_configuration(props["BucketEncryption"])
        )
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration=_lifecycle_configuration(props["LifecycleConfiguration"])
        )
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    if "NotificationConfiguration" in props:
        wanted = _notification_configuration(props["NotificationConfiguration"])
        # S3 announces every configuration change with an s3:TestEvent on each target, so a
        # re-run that changes nothing must not put it again.
        if _current_notifications(s3, name) != _comparable_notifications(wanted):
            s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=wanted)
    partition, region = ctx.stack.partition, ctx.stack.region
    suffix = ctx.stack.pseudo_parameters()["AWS::URLSuffix"]
    return Created(
        name,
        {
            "Arn": f"arn:{partition}:s3:::{name}",
            "DomainName": f"{name}.s3.{suffix}",
            "RegionalDomainName": f"{name}.s3.{region}.{suffix}",
        },
    )


def _encryption_configuration(encryption: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's BucketEncryption in the shape of S3's API (the default rule is renamed)."""
    rules = []
    for rule in encryption["ServerSideEncryptionConfiguration"]:
        rule = dict(rule)
        if "ServerSideEncryptionByDefault" in rule:
            rule["ApplyServerSideEncryptionByDefault"] = rule.pop("ServerSideEncryptionByDefault")
        rules.append(rule)
    return {"Rules": rules}


# CloudFormation's lifecycle rule keys the provisioner translates; others are refused by name.
_LIFECYCLE_RULE_KEYS = frozenset({"Id", "Status", "Prefix", "AbortIncompleteMultipartUpload", "ExpirationInDays"})


def _lifecycle_configuration(lifecycle: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's LifecycleConfiguration in the shape of S3's API (Id -> ID, Prefix -> Filter)."""
    rules = []
    for rule in lifecycle["Rules"]:
        api_rule: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
        if "Id" in rule:
            api_rule["ID"] = rule["Id"]
        if "AbortIncompleteMultipartUpload" in rule:
            api_rule["AbortIncompleteMultipartUpload"] = dict(rule["AbortIncompleteMultipartUpload"])
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": rule["ExpirationInDays"]}
        rules.append(api_rule)
    return {"Rules": rules}


_NOTIFICATION_TARGETS = {"QueueConfigurations": ("Queue", "QueueArn"), "TopicConfigurations": ("Topic", "TopicArn")}


def _validate_bucket(logical_id: str, props: Mapping[str, Any]) -> None:
    for rule in props.get("LifecycleConfiguration", {}).get("Rules", []):
        unknown_keys = sorted(set(rule) - _LIFECYCLE_RULE_KEYS)
        if unknown_keys:
            raise TemplateError(f"{logical_id}: lifecycle rule keys not supported locally: {', '.join(unknown_keys)}")
    config = props.get("NotificationConfiguration", {})
    unsupported = sorted(set(config) - set(_NOTIFICATION_TARGETS) - {"EventBridgeConfiguration"})
    if unsupported:
        # LambdaConfigurations above all: moto cannot run Lambda functions without Docker.
        raise TemplateError(f"{logical_id}: NotificationConfiguration {', '.join(unsupported)} not supported locally")


def _notification_configuration(config: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration in the shape of S3's API."""
    result: dict[str, Any] = {}
    for key, (target, api_target) in _NOTIFICATION_TARGETS.items():
        entries = []
        for item in config.get(key, []):
            entry: dict[str, Any] = {api_target: item[target], "Events": [item["Event"]]}
            rules = item.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            if rules:
                entry["Filter"] = {
                    "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
                }
            entries.append(entry)
        if entries:
            result[key] = entries
    if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        result["EventBridgeConfiguration"] = {}
    return result


def _comparable_notifications(config: Mapping[str, Any]) -> dict[str, Any]:
    comparable: dict[str, Any] = {}
    for key in _NOTIFICATION_TARGETS:
        entries = []
        for entry in config.get(key, []):
            entry = {k: v for k, v in entry.items() if k != "Id"}
            rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules")
            if rules is not None:
                entry["Filter"] = {
                    "Key": {"FilterRules": [{"Name": r["Name"].lower(), "Value": r["Value"]} for r in rules]}
                }
            entries.append(entry)
        if entries:
            comparable[key] = sorted(entries, key=lambda e: json.dumps(e, sort_keys=True))
    if "EventBridgeConfiguration" in config:
        comparable["EventBridgeConfiguration"] = {}
    return comparable


def _current_notifications(s3: Any, bucket: str) -> dict[str, Any]:
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    return _comparable_notifications(current)


# --- SNS --------------------------------------------------------------------------------------

_TOPIC_ATTRIBUTES = frozenset({"DisplayName", "FifoTopic", "ContentBasedDeduplication"})


def _create_topic(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    fifo = _attribute_value(props.get("FifoTopic", False)) == "true"
    name = props.get("TopicName") or ctx.name(logical_id, max_length=256, suffix=".fifo" if fifo else "")
    attributes = {k: _attribute_value(v) for k, v in _only(props, _TOPIC_ATTRIBUTES).items()}
    # CreateTopic is idempotent: the same name gives the same topic.
    arn = ctx.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
    return Created(arn, {"TopicArn": arn, "TopicName": name})


_SUBSCRIPTION_ATTRIBUTES = frozenset({"RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy"})
# Lambda and HTTP endpoints need more than moto delivers locally; SQS is what the stack wires.
_SUBSCRIPTION_PROTOCOLS = frozenset({"sqs"})


def _validate_subscription(logical_id: str, props: Mapping[str, Any]) -> None:
    if props["Protocol"] not in _SUBSCRIPTION_PROTOCOLS:
        raise TemplateError(f"{logical_id}: SNS protocol {props['Protocol']!r} is not supported locally")


def _create_subscription(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    sns = ctx.client("sns")
    # Subscribe is idempotent for the same topic, protocol and endpoint.
    arn = sns.subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    for key, value in _only(props, _SUBSCRIPTION_ATTRIBUTES).items():
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName=key, AttributeValue=_attribute_value(value))
    return Created(arn, {"Arn": arn})


# --- Cognito ----------------------------------------------------------------------------------

# CloudFormation and CreateUserPool share these names and shapes (UserPoolName is PoolName).
_USER_POOL_PASS_THROUGH = frozenset(
    {
        "Policies",
        "UsernameConfiguration",
        "AdminCreateUserConfig",
        "AutoVerifiedAttributes",
        "AliasAttributes",
        "UsernameAttributes",
        "Schema",
        "MfaConfiguration",
        "AccountRecoverySetting",
        "VerificationMessageTemplate",
        "UserAttributeUpdateSettings",
        "DeviceConfiguration",
        "DeletionProtection",
    }
)


def _create_user_pool(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    idp = ctx.client("cognito-idp")
    name = props.get("UserPoolName") or ctx.name(logical_id, max_length=128)
    pool_id = _find_user_pool(idp, name)
    if pool_id is None:
        pool_id = idp.create_user_pool(PoolName=name, **_only(props, _USER_POOL_PASS_THROUGH))["UserPool"]["Id"]
    arn = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Arn"]
    provider_name = f"cognito-idp.{ctx.stack.region}.{ctx.stack.pseudo_parameters()['AWS::URLSuffix']}/{pool_id}"
    return Created(
        pool_id,
        {"Arn": arn, "UserPoolId": pool_id, "ProviderName": provider_name, "ProviderURL": f"https://{provider_name}"},
    )


def _find_user_pool(idp: Any, name: str) -> str | None:
    # Pool names are not unique in Cognito; the oldest one of the name is this stack's.
    matches: list[dict[str, Any]] = []
    for page in idp.get_paginator("list_user_pools").paginate(PaginationConfig={"PageSize": 60}):
        matches.extend(p for p in page["UserPools"] if p["Name"] == name)
    if not matches:
        return None
    return str(min(matches, key=lambda p: (p["CreationDate"], p["Id"]))["Id"])


_USER_POOL_CLIENT_PASS_THROUGH = frozenset(
    {
        "GenerateSecret",
        "ExplicitAuthFlows",
        "IdTokenValidity",
        "AccessTokenValidity",
        "RefreshTokenValidity",
        "TokenValidityUnits",
        "ReadAttributes",
        "WriteAttributes",
        "AllowedOAuthFlows",
        "AllowedOAuthFlowsUserPoolClient",
        "AllowedOAuthScopes",
        "CallbackURLs",
        "LogoutURLs",
        "DefaultRedirectURI",
        "SupportedIdentityProviders",
        "PreventUserExistenceErrors",
        "EnableTokenRevocation",
        "AuthSessionValidity",
    }
)


def _create_user_pool_client(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    idp = ctx.client("cognito-idp")
    pool_id = props["UserPoolId"]
    name = props.get("ClientName") or ctx.name(logical_id, max_length=128)
    client_id = _find_user_pool_client(idp, pool_id, name)
    if client_id is None:
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName=name, **_only(props, _USER_POOL_CLIENT_PASS_THROUGH)
        )["UserPoolClient"]["ClientId"]
    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    attributes = {"ClientId": client_id, "Name": name}
    if client.get("ClientSecret"):
        attributes["ClientSecret"] = client["ClientSecret"]
    return Created(client_id, attributes)


def _find_user_pool_client(idp: Any, pool_id: str, name: str) -> str | None:
    for page in idp.get_paginator("list_user_pool_clients").paginate(
        UserPoolId=pool_id, PaginationConfig={"PageSize": 60}
    ):
        for client in page["UserPoolClients"]:
            if client["ClientName"] == name:
                return str(client["ClientId"])
    return None


# --- IAM, CloudWatch Logs, Step Functions (the order saga) ----------------------------------


def _create_role(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    """moto keeps the role (the state machine names it) but enforces none of its policies: the
    deploy tests check least privilege on the packaged template instead."""
    iam = ctx.client("iam")
    name = props.get("RoleName") or ctx.name(logical_id, max_length=64)
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))[
            "Role"]["Arn"]
    for policy in props.get("Policies", []):
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                            PolicyDocument=json.dumps(policy["PolicyDocument"]))
    return Created(name, {"Arn": arn, "RoleId": name})


def _create_log_group(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    logs = ctx.client("logs")
    name = props.get("LogGroupName") or ctx.name(logical_id, max_length=512)
    try:
        logs.create_log_group(logGroupName=name)
    except ClientError as err:
        if error_code(err) != "ResourceAlreadyExistsException":
            raise
    arn = f"arn:{ctx.stack.partition}:logs:{ctx.stack.region}:{ctx.stack.account_id}:log-group:{name}:*"
    return Created(name, {"Arn": arn})


def _definition(props: Mapping[str, Any]) -> str:
    """The definition as CloudFormation hands it to Step Functions: `${name}` replaced by each of
    DefinitionSubstitutions (already evaluated)."""
    text = json.dumps(props["Definition"])
    for name, value in props.get("DefinitionSubstitutions", {}).items():
        text = text.replace("${" + name + "}", str(value))
    return text


def _create_state_machine(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    sfn = ctx.client("stepfunctions")
    name = props.get("StateMachineName") or ctx.name(logical_id, max_length=80)
    arn = f"arn:{ctx.stack.partition}:states:{ctx.stack.region}:{ctx.stack.account_id}:stateMachine:{name}"
    definition = _definition(props)
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=props["RoleArn"])
    except ClientError as err:
        if error_code(err) != "StateMachineDoesNotExist":
            raise
        sfn.create_state_machine(name=name, definition=definition, roleArn=props["RoleArn"],
                                 type=props.get("StateMachineType", "STANDARD"))
    return Created(arn, {"Arn": arn, "Name": name})
# --- Secrets Manager --------------------------------------------------------------------------

# GenerateSecretString's fields that GetRandomPassword shares (name and meaning).
_RANDOM_PASSWORD_FIELDS = frozenset(
    {
        "PasswordLength",
        "ExcludeCharacters",
        "ExcludeNumbers",
        "ExcludePunctuation",
        "ExcludeUppercase",
        "ExcludeLowercase",
        "IncludeSpace",
        "RequireEachIncludedType",
    }
)


def _validate_secret(logical_id: str, props: Mapping[str, Any]) -> None:
    if "SecretString" in props and "GenerateSecretString" in props:
        raise TemplateError(f"{logical_id}: SecretString and GenerateSecretString exclude each other")
    generate = props.get("GenerateSecretString", {})
    unknown = sorted(set(generate) - _RANDOM_PASSWORD_FIELDS - {"SecretStringTemplate", "GenerateStringKey"})
    if unknown:
        raise TemplateError(f"{logical_id}: GenerateSecretString keys not supported locally: {', '.join(unknown)}")
    if ("SecretStringTemplate" in generate) != ("GenerateStringKey" in generate):
        raise TemplateError(f"{logical_id}: SecretStringTemplate and GenerateStringKey go together")


def _create_secret(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    sm = ctx.client("secretsmanager")
    name = props.get("Name") or ctx.name(logical_id, max_length=512)
    try:
        # A re-run keeps the secret and its value (the local stack puts the stand-in's key in it).
        arn = sm.describe_secret(SecretId=name)["ARN"]
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        params: dict[str, Any] = {"Name": name}
        if "Description" in props:
            params["Description"] = props["Description"]
        if "SecretString" in props:
            params["SecretString"] = props["SecretString"]
        elif "GenerateSecretString" in props:
            params["SecretString"] = _generated_secret(sm, props["GenerateSecretString"])
        # Neither: an empty secret (no version), as CloudFormation creates it.
        arn = sm.create_secret(**params)["ARN"]
    return Created(arn, {"Id": arn})


def _generated_secret(sm: Any, generate: Mapping[str, Any]) -> str:
    options = {k: v for k, v in generate.items() if k in _RANDOM_PASSWORD_FIELDS}
    password = str(sm.get_random_password(**options)["RandomPassword"])
    if "GenerateStringKey" not in generate:
        return password
    document = json.loads(generate["SecretStringTemplate"])
    document[generate["GenerateStringKey"]] = password
    return json.dumps(document)


# --- EventBridge ------------------------------------------------------------------------------


def _create_event_bus(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    events = ctx.client("events")
    name = props["Name"]
    try:
        arn = events.describe_event_bus(Name=name)["Arn"]
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        params = {"Name": name, **({"Description": props["Description"]} if "Description" in props else {})}
        arn = events.create_event_bus(**params)["EventBusArn"]
    return Created(name, {"Arn": arn, "Name": name})


def _create_archive(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    events = ctx.client("events")
    # Archive names: at most 48 characters of [.-_A-Za-z0-9].
    name = props.get("ArchiveName") or ctx.name(logical_id, max_length=48)
    try:
        arn = events.describe_archive(ArchiveName=name)["ArchiveArn"]
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
        params: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": props["SourceArn"]}
        if "Description" in props:
            params["Description"] = props["Description"]
        if "EventPattern" in props:
            params["EventPattern"] = _attribute_value(props["EventPattern"])
        if "RetentionDays" in props:
            params["RetentionDays"] = int(props["RetentionDays"])
        arn = events.create_archive(**params)["ArchiveArn"]
    return Created(name, {"Arn": arn, "ArchiveName": name})


# The target settings the local bus honours for an SQS target. moto ignores Input and InputPath
# (see LOCAL-AWS-FACTS), so they are refused rather than silently dropped.
_RULE_TARGET_KEYS = frozenset({"Id", "Arn", "RetryPolicy", "DeadLetterConfig", "SqsParameters"})
# The pattern operators moto 5.2.5's EventPattern implements (moto/events/models.py); it treats
# an operator it does not know as matching everything, so any other is refused here.
_PATTERN_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case", "numeric", "anything-but",
                                "exists", "cidr", "wildcard"})


def _validate_rule(logical_id: str, props: Mapping[str, Any]) -> None:
    if "ScheduleExpression" in props:
        # moto accepts schedules and never fires them; the app's schedules are Chalice's own.
        raise TemplateError(f"{logical_id}: ScheduleExpression rules are not supported locally")
    if "EventPattern" not in props:
        raise TemplateError(f"{logical_id}: a rule needs an EventPattern locally")
    _check_pattern(logical_id, props["EventPattern"], "")
    for target in props.get("Targets", []):
        unknown = sorted(set(target) - _RULE_TARGET_KEYS)
        if unknown:
            raise TemplateError(f"{logical_id}: rule target keys not supported locally: {', '.join(unknown)}")


def _check_pattern(logical_id: str, node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$or":
                for branch in value:
                    _check_pattern(logical_id, branch, path)
            else:
                _check_pattern(logical_id, value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                unknown = sorted(set(item) - _PATTERN_OPERATORS)
                if unknown:
                    raise TemplateError(f"{logical_id}: pattern operator {', '.join(unknown)} at {path!r} "
                                        "is not matched by the local bus (moto)")
    else:
        raise TemplateError(f"{logical_id}: pattern value at {path!r} must be a list or an object")


def _create_rule(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    events = ctx.client("events")
    name = props.get("Name") or ctx.name(logical_id, max_length=64)
    bus = props.get("EventBusName", "default")
    params: dict[str, Any] = {"Name": name, "EventBusName": bus, "EventPattern": _attribute_value(props["EventPattern"]),
                              "State": props.get("State", "ENABLED")}
    if "Description" in props:
        params["Description"] = props["Description"]
    # PutRule replaces the rule of that name and keeps its targets: a re-run is idempotent.
    arn = events.put_rule(**params)["RuleArn"]
    targets = props.get("Targets", [])
    for target in targets:
        if ":sqs:" not in str(target["Arn"]):
            # moto would invoke a Lambda target through its own Lambda (Docker): target SQS instead.
            raise TemplateError(f"{logical_id}: only SQS rule targets are supported locally, got {target['Arn']}")
    if targets:
        response = events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        if response.get("FailedEntryCount"):
            raise TemplateError(f"{logical_id}: targets refused: {response['FailedEntries']}")
    # CloudFormation's Ref of a rule on a custom bus is "<bus>|<rule>".
    ref = name if bus == "default" else f"{bus}|{name}"
    return Created(ref, {"Arn": arn})


# --- Lambda event source mappings (DynamoDB streams) ------------------------------------------


def _validate_event_source_mapping(logical_id: str, props: Mapping[str, Any]) -> None:
    try:
        check_stream_mapping(logical_id, props)
    except ValueError as err:
        raise TemplateError(str(err)) from None


def _create_event_source_mapping(ctx: ResourceContext, logical_id: str, props: dict[str, Any]) -> Created:
    """Recorded, not created in moto: the local stack's own stream poller delivers the stream
    (devstack/streams.py). moto's mapping would need Docker to run the function, and while one
    exists moto's StreamShard drops the records it hands to it, so a poller would see none."""
    stream = props["EventSourceArn"]
    if ":dynamodb:" in stream and "/stream/" in stream:
        # CreateEventSourceMapping fails for a stream that does not exist: so does this.
        ctx.client("dynamodbstreams").describe_stream(StreamArn=stream)
    mapping_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ctx.stack.account_id}/{ctx.stack.name}/{logical_id}"))
    arn = f"arn:{ctx.stack.partition}:lambda:{ctx.stack.region}:{ctx.stack.account_id}:event-source-mapping:{mapping_id}"
    return Created(mapping_id, {"Id": mapping_id, "EventSourceMappingArn": arn})


SUPPORTED_TYPES: Mapping[str, ResourceType] = {
    IAM_ROLE: ResourceType(
        properties=frozenset({"AssumeRolePolicyDocument", "Policies", "RoleName"}),
        attributes=frozenset({"Arn", "RoleId"}),
        create=_create_role,
        required=frozenset({"AssumeRolePolicyDocument"}),
    ),
    LOG_GROUP: ResourceType(
        properties=frozenset({"LogGroupName"}),
        attributes=frozenset({"Arn"}),
        create=_create_log_group,
    ),
    STATE_MACHINE: ResourceType(
        properties=frozenset({"Definition", "DefinitionSubstitutions", "RoleArn", "StateMachineName",
                              "StateMachineType"}),
        attributes=frozenset({"Arn", "Name"}),
        create=_create_state_machine,
        required=frozenset({"Definition", "RoleArn"}),
    ),
    DYNAMODB_TABLE: ResourceType(
        properties=_TABLE_PASS_THROUGH
        | {"TableName", "GlobalSecondaryIndexes", "StreamSpecification", "TimeToLiveSpecification"},
        attributes=frozenset({"Arn", "StreamArn"}),
        create=_create_table,
        required=frozenset({"AttributeDefinitions", "KeySchema"}),
    ),
    SQS_QUEUE: ResourceType(
        properties=_QUEUE_ATTRIBUTES | {"QueueName"},
        attributes=frozenset({"Arn", "QueueName", "QueueUrl"}),
        create=_create_queue,
    ),
    SQS_QUEUE_POLICY: ResourceType(
        properties=frozenset({"Queues", "PolicyDocument"}),
        attributes=frozenset(),
        create=_create_queue_policy,
        required=frozenset({"Queues", "PolicyDocument"}),
    ),
    S3_BUCKET: ResourceType(
        properties=frozenset(
            {
                "BucketName",
                "OwnershipControls",
                "PublicAccessBlockConfiguration",
                "BucketEncryption",
                "LifecycleConfiguration",
                "VersioningConfiguration",
                "NotificationConfiguration",
            }
        ),
        attributes=frozenset({"Arn", "DomainName", "RegionalDomainName"}),
        create=_create_bucket,
        validate=_validate_bucket,
    ),
    SNS_TOPIC: ResourceType(
        properties=_TOPIC_ATTRIBUTES | {"TopicName"},
        attributes=frozenset({"TopicArn", "TopicName"}),
        create=_create_topic,
    ),
    SNS_SUBSCRIPTION: ResourceType(
        properties=_SUBSCRIPTION_ATTRIBUTES | {"TopicArn", "Protocol", "Endpoint"},
        attributes=frozenset({"Arn"}),
        create=_create_subscription,
        required=frozenset({"TopicArn", "Protocol", "Endpoint"}),
        validate=_validate_subscription,
    ),
    USER_POOL: ResourceType(
        properties=_USER_POOL_PASS_THROUGH | {"UserPoolName"},
        attributes=frozenset({"Arn", "UserPoolId", "ProviderName", "ProviderURL"}),
        create=_create_user_pool,
    ),
    USER_POOL_CLIENT: ResourceType(
        properties=_USER_POOL_CLIENT_PASS_THROUGH | {"UserPoolId", "ClientName"},
        attributes=frozenset({"ClientId", "Name", "ClientSecret"}),
        create=_create_user_pool_client,
        required=frozenset({"UserPoolId"}),
    ),
    SECRET: ResourceType(
        properties=frozenset({"Name", "Description", "SecretString", "GenerateSecretString"}),
        attributes=frozenset({"Id"}),
        create=_create_secret,
        validate=_validate_secret,
    ),
    EVENT_BUS: ResourceType(
        properties=frozenset({"Name", "Description"}),
        attributes=frozenset({"Arn", "Name"}),
        create=_create_event_bus,
        required=frozenset({"Name"}),
    ),
    EVENT_ARCHIVE: ResourceType(
        properties=frozenset({"ArchiveName", "SourceArn", "Description", "EventPattern", "RetentionDays"}),
        attributes=frozenset({"Arn", "ArchiveName"}),
        create=_create_archive,
        required=frozenset({"SourceArn"}),
    ),
    EVENT_RULE: ResourceType(
        properties=frozenset({"Name", "Description", "EventBusName", "EventPattern", "ScheduleExpression",
                              "State", "Targets"}),
        attributes=frozenset({"Arn"}),
        create=_create_rule,
        validate=_validate_rule,
    ),
    EVENT_SOURCE_MAPPING: ResourceType(
        properties=STREAM_MAPPING_PROPERTIES,
        attributes=frozenset({"Id", "EventSourceMappingArn"}),
        create=_create_event_source_mapping,
        required=frozenset({"EventSourceArn", "FunctionName", "StartingPosition"}),
        validate=_validate_event_source_mapping,
    ),
}
