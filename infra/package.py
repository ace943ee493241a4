"""`make package`: Chalice's SAM template with infra/resources.json merged in, finished for AWS.

``chalice package --merge-template infra/resources.json`` gives one template holding the
functions, the API and every resource; ``finish`` then adds what Chalice leaves out:

- SQS event sources: the queue by ``Fn::GetAtt`` (Chalice writes an ARN built from the logical
  id, which is not the queue's name), ``FunctionResponseTypes: [ReportBatchItemFailures]``
  (chalice #2029: without it Lambda ignores ``batchItemFailures`` and retries whole batches);
- API Gateway stage tracing (chalice #1753) and function tracing;
- each function its own least-privilege role (infra/policies.py), a name, a log group with
  retention, and every resource's env var (the rule of infra/resources.py);
- event handlers loaded through app.py, so that the blueprints' middleware is registered;
- gateway responses in Chalice's error shape carrying ``X-Request-Id``;
- alarms on every dead-letter queue's depth and on every function's errors, to an encrypted topic;
- the API stage's throttling (rate and burst, per stage in .chalice/config.json: ``api_throttling``)
  and its access log (JSON, one line per request, to a log group with a retention).

The functions' dependencies are a layer built here, not by Chalice: ``pip install`` of the hashed
lock requirements/lambda.txt, wheels only, for Lambda's platform (python3.13 on Amazon Linux 2023,
arm64), so that what is deployed is exactly what the lock names, and nothing is compiled here.

One module, one job: each function here is one step of finishing the template, small and tested
on its own (tests/unit/infra/test_package.py), and ``finish`` reads as the list of them; building
and measuring the zips is infra/bundle.py's.

Usage: ``python -m infra.package --stage dev`` writes ``build/dev/template.json`` next to
Chalice's ``deployment.zip`` (the app) and ``layer.zip`` (its dependencies, under ``python/``),
and prints their sizes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.artifact import PACKAGE_LIMIT_BYTES, PLATFORMS, MiB, binary_problems, zip_size
from infra.bundle import (
    LAMBDA_RUNTIME, LAYER_LOCK, LAYER_ZIP, PackagingError, add_bytecode, build_layer, package_sizes,
)
from infra.policies import policy_document
from infra.resources import app_resources, env_var_name, load_template

__all__ = [
    "ALARM_TOPIC",
    "DEPENDENCIES_LAYER",
    "LAMBDA_RUNTIME",
    "LAYER_LOCK",
    "LOG_RETENTION_DAYS",
    "PackagingError",
    "add_alarms",
    "add_api_limits_and_access_log",
    "add_dependencies_layer",
    "add_gateway_responses",
    "add_log_groups",
    "add_resource_env",
    "build",
    "finish",
    "functions",
    "grant_least_privilege",
    "handler_name",
    "load_handlers_through_app",
    "name_functions",
    "trace_everything",
    "wire_event_source_mappings",
    "wire_sqs_events",
]

ROOT = Path(__file__).resolve().parent.parent
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_API = "AWS::Serverless::Api"
ALARM_TOPIC = "AlarmTopic"
ALARM_TOPIC_KEY = "AlarmTopicKey"
DEPENDENCIES_LAYER = "DependenciesLayer"
LOG_RETENTION_DAYS = {"dev": 14, "prod": 90}


def inline_definitions(template: dict[str, Any], resources: dict[str, Any]) -> None:
    """State machines' definitions as load_template read them from their files (the merge copies
    infra/resources.json as it is, where a definition is only named)."""
    for logical_id, resource in resources["Resources"].items():
        if "Definition" in resource.get("Properties", {}):
            template["Resources"][logical_id]["Properties"]["Definition"] = resource["Properties"]["Definition"]


def handler_name(function: dict[str, Any]) -> str:
    """The Chalice name of a function resource: ``api_handler`` or the decorated function's name."""
    handler = function["Properties"]["Handler"]
    return "api_handler" if handler == "app.app" else handler.rsplit(".", 1)[-1]


def functions(template: dict[str, Any]) -> dict[str, str]:
    """Chalice handler name -> logical id of its function, for every function of the template."""
    return {handler_name(resource): logical_id for logical_id, resource in template["Resources"].items()
            if resource["Type"] == SERVERLESS_FUNCTION}


def load_handlers_through_app(template: dict[str, Any]) -> None:
    """Event handlers as ``app.<name>``: importing app.py registers the blueprints' middleware,
    which Chalice's handler string (the blueprint's module, imported alone) would skip."""
    for name, logical_id in functions(template).items():
        props = template["Resources"][logical_id]["Properties"]
        if props["Handler"] != "app.app":
            props["Handler"] = f"app.{name}"


def name_functions(template: dict[str, Any]) -> None:
    """``<stack>-<handler>`` (Chalice's own naming): the log group's name is then known without a
    reference to the function, which would make role -> log group -> function -> role a cycle."""
    for name, logical_id in functions(template).items():
        template["Resources"][logical_id]["Properties"]["FunctionName"] = {"Fn::Sub": f"${{AWS::StackName}}-{name}"}


def add_log_groups(template: dict[str, Any], retention_days: int) -> None:
    """A log group per function, made by the stack so it has a retention (Lambda's own has none)."""
    resources = template["Resources"]
    for name, logical_id in functions(template).items():
        resources[f"{logical_id}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{name}"},
                "RetentionInDays": retention_days,
            },
        }
        # Had the function run first, Lambda would have made the group (without retention) and
        # the stack could not create it.
        resources[logical_id]["DependsOn"] = sorted({*_depends_on(resources[logical_id]), f"{logical_id}LogGroup"})


def grant_least_privilege(template: dict[str, Any]) -> None:
    """Give each function's role exactly its policy from infra/policies.py.

    Raises ValueError when two functions share a role, KeyError for a function without a policy.
    """
    resources = template["Resources"]
    seen: dict[str, str] = {}
    for name, logical_id in functions(template).items():
        role_id = resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        if role_id in seen:
            raise ValueError(f"{name} and {seen[role_id]} share the role {role_id}")
        seen[role_id] = name
        resources[role_id]["Properties"]["Policies"] = [
            {"PolicyName": f"{logical_id}Policy", "PolicyDocument": policy_document(name, f"{logical_id}LogGroup")}
        ]


def _depends_on(resource: dict[str, Any]) -> list[str]:
    value = resource.get("DependsOn", [])
    return [value] if isinstance(value, str) else list(value)


def wire_sqs_events(template: dict[str, Any]) -> None:
    """SQS event sources: the queue by reference, and partial batch failures reported.

    Chalice builds the queue's ARN from the decorator's string (our logical id); the real queue's
    name is CloudFormation's. Raises ValueError for a queue the template does not define.
    """
    resources = template["Resources"]
    for logical_id in functions(template).values():
        for event in resources[logical_id]["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            props = event["Properties"]
            queue_id = _queue_logical_id(props["Queue"])
            if resources.get(queue_id, {}).get("Type") != "AWS::SQS::Queue":
                raise ValueError(f"{logical_id}: no queue {queue_id!r} in the template")
            props["Queue"] = {"Fn::GetAtt": [queue_id, "Arn"]}
            props["FunctionResponseTypes"] = ["ReportBatchItemFailures"]


EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"


def _mapped_handler(mapping: dict[str, Any]) -> str:
    """The handler an event source mapping of infra/resources.json names
    (``{"Fn::Sub": "${AWS::StackName}-<handler>"}``, the name ``name_functions`` gives)."""
    name = mapping["Properties"]["FunctionName"]
    text = name.get("Fn::Sub", "") if isinstance(name, dict) else ""
    if not text.startswith("${AWS::StackName}-"):
        raise ValueError(f"an event source mapping names its function as ${{AWS::StackName}}-<handler>, not {name!r}")
    return str(text.removeprefix("${AWS::StackName}-"))


def wire_event_source_mappings(template: dict[str, Any]) -> None:
    """The streams' mappings (defined whole in infra/resources.json) wait for their functions:
    they name a function by its name, which CloudFormation cannot see as a dependency.

    Raises ValueError for a mapping whose function the app does not define.
    """
    resources = template["Resources"]
    by_handler = functions(template)
    for logical_id, resource in resources.items():
        if resource["Type"] != EVENT_SOURCE_MAPPING:
            continue
        handler = _mapped_handler(resource)
        if handler not in by_handler:
            raise ValueError(f"{logical_id}: the app has no function {handler!r}")
        resource["DependsOn"] = sorted({*_depends_on(resource), by_handler[handler]})


def _queue_logical_id(queue: Any) -> str:
    if isinstance(queue, dict) and set(queue) == {"Fn::GetAtt"}:
        return str(queue["Fn::GetAtt"][0])
    arn = queue["Fn::Sub"] if isinstance(queue, dict) else queue
    return str(arn).rsplit(":", 1)[-1]


def add_resource_env(template: dict[str, Any], resources: dict[str, Any]) -> None:
    """Every function gets every app resource's env var (``ORDERS_QUEUE: {Ref: OrdersQueue}``).

    All of them, to every function, as the local stack does: a variable names a resource, the
    role decides what may be done with it, and one environment everywhere means a handler cannot
    work locally and then miss a variable on Lambda.
    """
    env = {env_var_name(i): {"Ref": i} for i in app_resources(resources)}
    for logical_id in functions(template).values():
        variables = template["Resources"][logical_id]["Properties"].setdefault(
            "Environment", {}).setdefault("Variables", {})
        clash = sorted(set(variables) & set(env))
        if clash:
            raise ValueError(f"{logical_id}: stage variables {clash} would hide resource variables")
        variables.update(env)


def trace_everything(template: dict[str, Any]) -> None:
    """X-Ray on every function and on the API's stage (chalice #1753 leaves the stage off)."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == SERVERLESS_FUNCTION:
            resource["Properties"]["Tracing"] = "Active"
        elif resource["Type"] == SERVERLESS_API:
            resource["Properties"]["TracingEnabled"] = True


# API Gateway answers these itself, before the function runs: an unknown path or method
# (MISSING_AUTHENTICATION_TOKEN, since no route uses an API Gateway authorizer), throttling,
# a body over 10 MB, and the defaults. Same shape as the app's errors, same X-Request-Id header.
_GATEWAY_ERRORS = {
    # Static: the path is the client's, and a quote in it would break the JSON.
    "MISSING_AUTHENTICATION_TOKEN": (404, "NotFoundError", '"no route matches this method and path"'),
    "THROTTLED": (429, "TooManyRequestsError", "$context.error.messageString"),
    "REQUEST_TOO_LARGE": (413, "RequestEntityTooLargeError", "$context.error.messageString"),
    "DEFAULT_4XX": (None, "BadRequestError", "$context.error.messageString"),
    "DEFAULT_5XX": (None, "InternalServerError", "$context.error.messageString"),
}


def add_gateway_responses(template: dict[str, Any]) -> None:
    for resource in template["Resources"].values():
        if resource["Type"] != SERVERLESS_API:
            continue
        responses = resource["Properties"].setdefault("GatewayResponses", {})
        for response_type, (status, code, message) in _GATEWAY_ERRORS.items():
            response: dict[str, Any] = {
                "ResponseParameters": {"Headers": {"X-Request-Id": "context.requestId"}},
                # $context.error.messageString is already a quoted JSON string.
                "ResponseTemplates": {"application/json": f'{{"Code": "{code}", "Message": {message}}}'},
            }
            if status is not None:
                response["StatusCode"] = str(status)
            responses[response_type] = response


# One JSON line per request: who asked (address, agent), what (method, route, path), the answer
# (status, bytes, error) and how long it took; the request id joins it to the function's own logs.
ACCESS_LOG_FORMAT = json.dumps({
    "request_id": "$context.requestId", "trace_id": "$context.xrayTraceId", "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp", "user_agent": "$context.identity.userAgent",
    "method": "$context.httpMethod", "route": "$context.resourcePath", "path": "$context.path",
    "status": "$context.status", "bytes": "$context.responseLength", "latency_ms": "$context.responseLatency",
    "integration_latency_ms": "$context.integrationLatency", "error": "$context.error.message",
}, separators=(",", ":"))
API_ACCESS_LOG_GROUP = "ApiAccessLogGroup"


def add_api_limits_and_access_log(template: dict[str, Any], *, rate_limit: float, burst_limit: int,
                                  retention_days: int) -> None:
    """Throttle every route of the API's stage (over the limit: 429 in the app's error shape, from
    the THROTTLED gateway response) and log every request as JSON to a group with a retention.

    API Gateway writes access logs with the account's CloudWatch role (one per account and
    region): ``ApiGatewayAccount`` sets it, unless the parameter says the account has one.
    """
    resources = template["Resources"]
    resources[API_ACCESS_LOG_GROUP] = {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {"LogGroupName": {"Fn::Sub": "/aws/apigateway/${AWS::StackName}-access"},
                       "RetentionInDays": retention_days},
    }
    template.setdefault("Parameters", {})["SetApiGatewayCloudWatchRole"] = {
        "Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
        "Description": "false when the account already gives API Gateway a CloudWatch Logs role in this region "
                       "(another stage's stack, say): it is one setting per account and region",
    }
    template.setdefault("Conditions", {})["SettingApiGatewayCloudWatchRole"] = {
        "Fn::Equals": [{"Ref": "SetApiGatewayCloudWatchRole"}, "true"]}
    resources["ApiGatewayCloudWatchRole"] = {
        "Type": "AWS::IAM::Role",
        "Condition": "SettingApiGatewayCloudWatchRole",
        "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "ManagedPolicyArns": [
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}],
        },
    }
    resources["ApiGatewayAccount"] = {
        "Type": "AWS::ApiGateway::Account",
        "Condition": "SettingApiGatewayCloudWatchRole",
        "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}},
    }
    for resource in resources.values():
        if resource["Type"] != SERVERLESS_API:
            continue
        props = resource["Properties"]
        props["MethodSettings"] = [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": rate_limit,
                                    "ThrottlingBurstLimit": burst_limit, "MetricsEnabled": True}]
        props["AccessLogSetting"] = {"DestinationArn": {"Fn::GetAtt": [API_ACCESS_LOG_GROUP, "Arn"]},
                                     "Format": ACCESS_LOG_FORMAT}


def add_alarms(template: dict[str, Any]) -> None:
    """Alarms to one topic: any message in a dead-letter queue, any error of a function."""
    resources = template["Resources"]
    # Encrypted with a key of the stack's ($1 a month): CloudWatch cannot publish to a topic under
    # the AWS-managed alias/aws/sns, whose policy no one can extend.
    resources[ALARM_TOPIC_KEY] = {
        "Type": "AWS::KMS::Key",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "Description": {"Fn::Sub": "${AWS::StackName}: the alarm topic's messages"},
            "EnableKeyRotation": True,
            "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                {"Sid": "AccountAdministersTheKey", "Effect": "Allow",
                 "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
                 "Principal": {"Service": "cloudwatch.amazonaws.com"},
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
                 "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}},
            ]},
        },
    }
    resources[ALARM_TOPIC] = {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": {"Ref": ALARM_TOPIC_KEY}}}
    for queue_id in _dead_letter_queues(resources):
        resources[f"{queue_id}DepthAlarm"] = _alarm(
            f"a message reached {queue_id}: a record failed every retry; inspect it, fix, redrive",
            namespace="AWS/SQS", metric="ApproximateNumberOfMessagesVisible", statistic="Maximum",
            dimension=("QueueName", {"Fn::GetAtt": [queue_id, "QueueName"]}))
    for logical_id, mapping in [(i, r) for i, r in resources.items() if r["Type"] == EVENT_SOURCE_MAPPING]:
        handler = _mapped_handler(mapping)
        resources[f"{logical_id}IteratorAgeAlarm"] = _alarm(
            f"{handler} is more than a minute behind its stream: events reach the read models late; "
            "look for failing batches or throttling", namespace="AWS/Lambda", metric="IteratorAge",
            statistic="Maximum", dimension=("FunctionName", {"Ref": functions(template)[handler]}), threshold=60_000)
    for queue_id in sorted({_queue_logical_id(m["Properties"]["DestinationConfig"]["OnFailure"]["Destination"])
                            for m in resources.values() if m["Type"] == EVENT_SOURCE_MAPPING
                            and "DestinationConfig" in m["Properties"]}):
        resources[f"{queue_id}DepthAlarm"] = _alarm(
            f"a stream batch failed every retry and reached {queue_id}; recover_lost_changes republishes "
            "what it can and logs the rest: read its logs", namespace="AWS/SQS",
            metric="ApproximateNumberOfMessagesVisible", statistic="Maximum",
            dimension=("QueueName", {"Fn::GetAtt": [queue_id, "QueueName"]}))
    for logical_id in [i for i, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine"]:
        resources[f"{logical_id}FailedAlarm"] = _alarm(
            f"an execution of {logical_id} failed (compensation failed, or a buyer was not e-mailed); "
            "read its history, fix, redrive",
            namespace="AWS/States", metric="ExecutionsFailed", statistic="Sum",
            dimension=("StateMachineArn", {"Ref": logical_id}))
    for name, logical_id in functions(template).items():
        if name in _state_machine_steps(resources):
            # A step's error is the saga's control flow (a declined card raises PaymentDeclined for
            # the state machine to catch); what needs a person is a failed execution, alarmed above.
            continue
        resources[f"{logical_id}ErrorsAlarm"] = _alarm(
            f"{name} raised (an invocation failed, not a record reported in batchItemFailures)",
            namespace="AWS/Lambda", metric="Errors", statistic="Sum", dimension=("FunctionName", {"Ref": logical_id}))


def _state_machine_steps(resources: dict[str, Any]) -> set[str]:
    """The handlers state machines invoke (``${AWS::StackName}-<handler>`` in their substitutions)."""
    return {value["Fn::Sub"].rsplit("${AWS::StackName}-", 1)[1]
            for resource in resources.values() if resource["Type"] == "AWS::StepFunctions::StateMachine"
            for value in resource["Properties"].get("DefinitionSubstitutions", {}).values()
            if isinstance(value, dict) and "${AWS::StackName}-" in str(value.get("Fn::Sub", ""))}


def _dead_letter_queues(resources: dict[str, Any]) -> list[str]:
    targets = []
    for resource in resources.values():
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in resource.get("Properties", {}):
            target = resource["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
            targets.append(target["Fn::GetAtt"][0])
    return targets


def _alarm(description: str, *, namespace: str, metric: str, statistic: str,
           dimension: tuple[str, Any], threshold: float = 1) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
            "Statistic": statistic,
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALARM_TOPIC}],
        },
    }


def finish(sam: dict[str, Any], *, resources: dict[str, Any], stage: str, architecture: str = "arm64",
           lock_digest: str = "", api_throttling: dict[str, Any] | None = None) -> dict[str, Any]:
    """The deployable template: Chalice's merged SAM template with everything above added.

    Raises ValueError when a resource of infra/resources.json is missing from ``sam`` (the merge
    did not happen) or a name would clash.
    """
    template = copy.deepcopy(sam)
    missing = sorted(set(resources["Resources"]) - set(template["Resources"]))
    if missing:
        raise ValueError(f"not merged from infra/resources.json: {', '.join(missing)}")
    template["Description"] = f"Storefront ({stage}): the Chalice app and every resource it uses."
    inline_definitions(template, resources)
    load_handlers_through_app(template)
    name_functions(template)
    add_log_groups(template, LOG_RETENTION_DAYS[stage])
    grant_least_privilege(template)
    wire_sqs_events(template)
    wire_event_source_mappings(template)
    add_resource_env(template, resources)
    trace_everything(template)
    add_gateway_responses(template)
    add_alarms(template)
    throttling = api_throttling or {"rate_limit": 20, "burst_limit": 40}
    add_api_limits_and_access_log(template, rate_limit=throttling["rate_limit"],
                                  burst_limit=throttling["burst_limit"], retention_days=LOG_RETENTION_DAYS[stage])
    add_dependencies_layer(template, architecture=architecture, lock_digest=lock_digest)
    outputs = template.setdefault("Outputs", {})
    outputs["AlarmTopicArn"] = {"Value": {"Ref": ALARM_TOPIC}}
    # What a newcomer needs to create a user and sign in (README, Deploy).
    for logical_id in ("UserPool", "UserPoolClient"):
        if logical_id in template["Resources"]:
            outputs[f"{logical_id}Id"] = {"Value": {"Ref": logical_id}}
    return template


def add_dependencies_layer(template: dict[str, Any], *, architecture: str, lock_digest: str) -> None:
    """One layer of the locked dependencies (``layer.zip``), used by every function.

    Raises PackagingError when Chalice wrote another runtime or architecture than the layer's.
    """
    resources = template["Resources"]
    resources[DEPENDENCIES_LAYER] = {
        "Type": "AWS::Serverless::LayerVersion",
        "Properties": {
            "ContentUri": f"./{LAYER_ZIP}",
            "Description": f"requirements/lambda.txt sha256:{lock_digest[:16]}",
            "CompatibleRuntimes": [LAMBDA_RUNTIME],
            "CompatibleArchitectures": [architecture],
            "RetentionPolicy": "Delete",
        },
    }
    for name, logical_id in functions(template).items():
        props = resources[logical_id]["Properties"]
        if (props.get("Runtime"), props.get("Architectures", ["x86_64"])) != (LAMBDA_RUNTIME, [architecture]):
            raise PackagingError(f"{name}: {props.get('Runtime')} {props.get('Architectures')}, but the layer is "
                                 f"for {LAMBDA_RUNTIME} {architecture} (run make package from make's Python 3.13 venv)")
        props["Layers"] = [{"Ref": DEPENDENCIES_LAYER}]


def _stage_config(stage: str) -> Any:
    """Chalice's view of .chalice/config.json for the stage."""
    from chalice.config import Config

    with open(ROOT / ".chalice" / "config.json", encoding="utf-8") as f:
        return Config(chalice_stage=stage, config_from_disk=json.load(f))


def _stage_settings(stage: str) -> dict[str, Any]:
    """The stage's own section of .chalice/config.json (where the settings Chalice does not know live)."""
    with open(ROOT / ".chalice" / "config.json", encoding="utf-8") as f:
        return dict(json.load(f)["stages"][stage])


def _stage_environment(stage: str) -> dict[str, str]:
    """The stage's environment variables: app.py reads some when imported (queue concurrency caps),
    and Chalice imports it to package, so it must see what Lambda will."""
    return dict(_stage_config(stage).environment_variables)


def build(stage: str, out_dir: Path) -> Path:
    """Package ``stage`` into ``out_dir``: Chalice's ``deployment.zip`` (the app), ``layer.zip``
    (requirements/lambda.txt for the stage's architecture) and ``template.json``.

    Raises CalledProcessError if Chalice or pip fails, PackagingError if the package would not
    load on Lambda.
    """
    if stage not in LOG_RETENTION_DAYS:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(LOG_RETENTION_DAYS)}")
    if f"python{sys.version_info[0]}.{sys.version_info[1]}" != LAMBDA_RUNTIME:
        # Chalice would write this Python's runtime, and its bytecode would be useless to Lambda's.
        raise PackagingError(f"make package must run under {LAMBDA_RUNTIME} (make's venv), not {sys.version.split()[0]}")
    if (ROOT / "requirements.txt").exists():
        raise PackagingError("requirements.txt would make Chalice bundle dependencies into the app's zip: "
                             "the layer's are requirements/lambda.in and its lock lambda.txt")
    shutil.rmtree(out_dir, ignore_errors=True)
    config = _stage_config(stage)
    architecture = config.lambda_architecture
    env = {**os.environ, **config.environment_variables}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # Chalice needs one to package; the deploy picks its own
    chalice = Path(sys.executable).with_name("chalice")
    command = [str(chalice), "package", "--stage", stage, "--merge-template", "infra/resources.json", str(out_dir)]
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    add_bytecode(out_dir / "deployment.zip")
    build_layer(LAYER_LOCK, out_dir / LAYER_ZIP, architecture)
    problems = binary_problems(out_dir / "deployment.zip", PLATFORMS[architecture])
    if problems:
        raise PackagingError("the app's zip would not load on Lambda:\n  " + "\n  ".join(problems))
    with open(out_dir / "sam.json", encoding="utf-8") as f:
        sam = json.load(f)
    template = finish(sam, resources=load_template(), stage=stage, architecture=architecture,
                      lock_digest=hashlib.sha256(LAYER_LOCK.read_bytes()).hexdigest(),
                      api_throttling=_stage_settings(stage)["api_throttling"])
    target = out_dir / "template.json"
    with open(target, "w", encoding="utf-8") as f:
        json.dump(template, f, indent=2)
        f.write("\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev", choices=sorted(LOG_RETENTION_DAYS))
    parser.add_argument("--out", type=Path, help="output folder (default build/<stage>)")
    args = parser.parse_args(argv)
    out_dir = args.out or ROOT / "build" / args.stage
    try:
        target = build(args.stage, out_dir)
    except PackagingError as err:
        print(f"make package: {err}", file=sys.stderr)
        return 1
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    print(f"package for {LAMBDA_RUNTIME} {_stage_config(args.stage).lambda_architecture}:")
    print(package_sizes(out_dir))
    total = sum(zip_size(out_dir / n).unpacked for n in ("deployment.zip", LAYER_ZIP))
    if total > PACKAGE_LIMIT_BYTES:
        print(f"make package: {total / MiB:.1f} MiB unpacked is over our limit of {PACKAGE_LIMIT_BYTES / MiB:.0f} MiB "
              "(infra/artifact.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
