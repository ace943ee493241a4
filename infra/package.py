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
- alarms on every dead-letter queue's depth and on every function's errors.

Usage: ``python -m infra.package --stage dev`` writes ``build/dev/template.json`` next to
Chalice's ``deployment.zip`` (the app) and ``layer-deployment.zip`` (its dependencies).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from infra.policies import policy_document
from infra.resources import app_resources, env_var_name, load_template

__all__ = [
    "ALARM_TOPIC",
    "LOG_RETENTION_DAYS",
    "PackagingError",
    "add_alarms",
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
    "source_built_wheels",
    "trace_everything",
    "wire_sqs_events",
]

ROOT = Path(__file__).resolve().parent.parent
_MISSING_DEPENDENCIES = "Could not install dependencies"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_API = "AWS::Serverless::Api"
ALARM_TOPIC = "AlarmTopic"
LOG_RETENTION_DAYS = {"dev": 14, "prod": 90}
# Lambda's python3.11 runtime (Amazon Linux 2) has glibc 2.26.
_LAMBDA_GLIBC = (2, 26)


class PackagingError(RuntimeError):
    """The package would not work on Lambda."""


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


def add_alarms(template: dict[str, Any]) -> None:
    """Alarms to one topic: any message in a dead-letter queue, any error of a function."""
    resources = template["Resources"]
    # Not encrypted with alias/aws/sns: CloudWatch cannot use that AWS-managed key to publish.
    resources[ALARM_TOPIC] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    for queue_id in _dead_letter_queues(resources):
        resources[f"{queue_id}DepthAlarm"] = _alarm(
            f"a message reached {queue_id}: a record failed every retry; inspect it, fix, redrive",
            namespace="AWS/SQS", metric="ApproximateNumberOfMessagesVisible", statistic="Maximum",
            dimension=("QueueName", {"Fn::GetAtt": [queue_id, "QueueName"]}))
    for name, logical_id in functions(template).items():
        resources[f"{logical_id}ErrorsAlarm"] = _alarm(
            f"{name} raised (an invocation failed, not a record reported in batchItemFailures)",
            namespace="AWS/Lambda", metric="Errors", statistic="Sum", dimension=("FunctionName", {"Ref": logical_id}))


def _dead_letter_queues(resources: dict[str, Any]) -> list[str]:
    targets = []
    for resource in resources.values():
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in resource.get("Properties", {}):
            target = resource["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
            targets.append(target["Fn::GetAtt"][0])
    return targets


def _alarm(description: str, *, namespace: str, metric: str, statistic: str,
           dimension: tuple[str, Any]) -> dict[str, Any]:
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
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALARM_TOPIC}],
        },
    }


def finish(sam: dict[str, Any], *, resources: dict[str, Any], stage: str) -> dict[str, Any]:
    """The deployable template: Chalice's merged SAM template with everything above added.

    Raises ValueError when a resource of infra/resources.json is missing from ``sam`` (the merge
    did not happen) or a name would clash.
    """
    template = copy.deepcopy(sam)
    missing = sorted(set(resources["Resources"]) - set(template["Resources"]))
    if missing:
        raise ValueError(f"not merged from infra/resources.json: {', '.join(missing)}")
    template["Description"] = f"Storefront ({stage}): the Chalice app and every resource it uses."
    load_handlers_through_app(template)
    name_functions(template)
    add_log_groups(template, LOG_RETENTION_DAYS[stage])
    grant_least_privilege(template)
    wire_sqs_events(template)
    add_resource_env(template, resources)
    trace_everything(template)
    add_gateway_responses(template)
    add_alarms(template)
    outputs = template.setdefault("Outputs", {})
    outputs["AlarmTopicArn"] = {"Value": {"Ref": ALARM_TOPIC}}
    # What a newcomer needs to create a user and sign in (README, Deploy).
    for logical_id in ("UserPool", "UserPoolClient"):
        if logical_id in template["Resources"]:
            outputs[f"{logical_id}Id"] = {"Value": {"Ref": logical_id}}
    return template


def source_built_wheels(deployment_zip: Path) -> list[str]:
    """Packages in the zip whose native code was compiled here rather than taken from a wheel
    built for Lambda (tag ``linux_x86_64``, or a manylinux newer than Lambda's glibc): they
    link against this machine's libraries and may not load on Lambda."""
    found = []
    with zipfile.ZipFile(deployment_zip) as zipped:
        for name in zipped.namelist():
            if not name.endswith(".dist-info/WHEEL"):
                continue
            tags = [line.split(":", 1)[1].strip() for line in zipped.read(name).decode().splitlines()
                    if line.startswith("Tag:")]
            platforms = {tag.rsplit("-", 1)[-1] for tag in tags}
            if platforms and not any(_runs_on_lambda(p) for p in platforms):
                found.append(name.split(".dist-info/")[0].rsplit("/", 1)[-1])
    return sorted(found)


def _runs_on_lambda(platform: str) -> bool:
    if platform == "any":
        return True
    legacy = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12), "manylinux2014_x86_64": (2, 17)}
    if platform in legacy:
        return legacy[platform] <= _LAMBDA_GLIBC
    parts = platform.split("_")
    if platform.startswith("manylinux_") and platform.endswith("_x86_64") and len(parts) == 5:
        return (int(parts[1]), int(parts[2])) <= _LAMBDA_GLIBC
    return False


def _stage_environment(stage: str) -> dict[str, str]:
    """The stage's environment variables: app.py reads some when imported (queue concurrency caps),
    and Chalice imports it to package, so it must see what Lambda will."""
    from chalice.config import Config

    with open(ROOT / ".chalice" / "config.json", encoding="utf-8") as f:
        config = Config(chalice_stage=stage, config_from_disk=json.load(f))
    return dict(config.environment_variables)


def build(stage: str, out_dir: Path) -> Path:
    """Run ``chalice package`` for ``stage`` into ``out_dir`` and write ``out_dir/template.json``.

    Chalice caches the dependency layer under .chalice/deployments, so only a first run (or a
    change to requirements.txt) downloads wheels. Raises CalledProcessError if Chalice fails,
    PackagingError if it could not get every dependency.
    """
    if stage not in LOG_RETENTION_DAYS:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(LOG_RETENTION_DAYS)}")
    shutil.rmtree(out_dir, ignore_errors=True)
    env = {**os.environ, **_stage_environment(stage)}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # Chalice needs one to package; the deploy picks its own
    chalice = Path(sys.executable).with_name("chalice")
    command = [str(chalice), "package", "--stage", stage, "--merge-template", "infra/resources.json", str(out_dir)]
    started = time.time()
    output = []
    # Passed through as it comes (a first run takes minutes), and kept to be read afterwards.
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            output.append(line)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    if _MISSING_DEPENDENCIES in "".join(output):
        # Chalice carries on without them and caches the incomplete layer: forget it, so that the
        # next run downloads again (a failed download is usually the network's or the index's).
        for cached in (ROOT / ".chalice" / "deployments").glob("managed-layer-*.zip"):
            if cached.stat().st_mtime >= started:
                cached.unlink()
        raise PackagingError("chalice could not get every dependency for Lambda (see its message above)")
    with open(out_dir / "sam.json", encoding="utf-8") as f:
        sam = json.load(f)
    template = finish(sam, resources=load_template(), stage=stage)
    target = out_dir / "template.json"
    with open(target, "w", encoding="utf-8") as f:
        json.dump(template, f, indent=2)
        f.write("\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev", choices=sorted(LOG_RETENTION_DAYS))
    parser.add_argument("--out", type=Path, help="output folder (default build/<stage>)")
    parser.add_argument("--check-wheels", action="store_true",
                        help="fail if a package with native code was built here rather than for Lambda")
    args = parser.parse_args(argv)
    out_dir = args.out or ROOT / "build" / args.stage
    try:
        target = build(args.stage, out_dir)
    except PackagingError as err:
        print(f"make package: {err}", file=sys.stderr)
        return 1
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    suspicious = [p for z in sorted(out_dir.glob("*.zip")) for p in source_built_wheels(z)]
    if suspicious:
        print(f"warning: built from source on this machine, may not load on Lambda (glibc "
              f"{'.'.join(map(str, _LAMBDA_GLIBC))}): {', '.join(suspicious)}", file=sys.stderr)
        if args.check_wheels:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
