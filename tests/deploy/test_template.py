"""The packaged template: cfn-lint clean, and what Chalice leaves out is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.package import functions
from infra.resources import app_resources, env_var_name, load_template

pytestmark = pytest.mark.timeout(900)

RESOURCES = load_template()["Resources"]
CFN_LINT = str(Path(sys.executable).with_name("cfn-lint"))


def _of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {i: r for i, r in template["Resources"].items() if r["Type"] == type_}


def _sqs_events(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Handler name -> the properties of its SQS event source."""
    found = {}
    for name, logical_id in functions(template).items():
        for event in template["Resources"][logical_id]["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                found[name] = event["Properties"]
    return found


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cfn_lint_finds_no_error_and_no_warning(packaged: dict[str, Path], stage: str) -> None:
    result = subprocess.run([CFN_LINT, str(packaged[stage] / "template.json")], capture_output=True, text=True)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cfn_lint_would_notice_a_broken_template(packaged: dict[str, Path], tmp_path: Path) -> None:
    broken = json.loads((packaged["dev"] / "template.json").read_text())
    broken["Resources"]["OrdersQueue"]["Properties"]["VisibilityTimeout"] = 50_000
    (tmp_path / "broken.json").write_text(json.dumps(broken))

    result = subprocess.run([CFN_LINT, str(tmp_path / "broken.json")], capture_output=True, text=True)

    assert result.returncode != 0 and "E3034" in result.stdout


def test_every_resource_of_the_one_definition_is_in_the_template_unchanged(template: dict[str, Any]) -> None:
    for logical_id, resource in RESOURCES.items():
        packaged = dict(template["Resources"][logical_id])
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            # The one thing packaging adds (infra/package.py:wire_event_source_mappings): the
            # mapping waits for the function it names.
            (function,) = packaged.pop("DependsOn")
            named = template["Resources"][function]["Properties"].get("FunctionName")
            assert named == resource["Properties"]["FunctionName"], logical_id
        assert packaged == resource, logical_id


def test_every_sqs_event_source_reports_partial_batch_failures_on_a_queue_of_the_stack(
        template: dict[str, Any]) -> None:
    events = _sqs_events(template)

    assert set(events) == {"consume_orders", "process_images", "dispatch_import", "import_chunk",
                           "dispatch_import_dead_letter", "import_chunk_dead_letter", "orders_dead_letter",
                           "project_sales", "email_low_stock", "sales_dead_letter", "low_stock_dead_letter",
                           "recover_lost_changes"}
    for name, props in events.items():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
        queue_id, attribute = props["Queue"]["Fn::GetAtt"]
        assert (template["Resources"][queue_id]["Type"], attribute) == ("AWS::SQS::Queue", "Arn"), name


def test_event_sources_have_the_settings_the_local_emulator_uses(template: dict[str, Any]) -> None:
    from app import app

    events = _sqs_events(template)
    for source in app.event_sources:
        if not hasattr(source, "queue"):
            continue
        props = events[source.name]
        assert props["Queue"]["Fn::GetAtt"][0] == source.queue
        assert props["BatchSize"] == source.batch_size
        assert props.get("MaximumBatchingWindowInSeconds", 0) == source.maximum_batching_window_in_seconds
        assert props.get("ScalingConfig", {}).get("MaximumConcurrency") == source.maximum_concurrency


CHALICE_CONFIG = json.loads((Path(__file__).resolve().parents[2] / ".chalice" / "config.json").read_text())
# Each queue consumer and the stage variable that caps it.
CAPS = {"consume_orders": "ORDERS_MAX_CONCURRENCY", "process_images": "IMAGES_MAX_CONCURRENCY",
        "dispatch_import": "IMPORT_DISPATCH_MAX_CONCURRENCY", "import_chunk": "IMPORT_MAX_CONCURRENCY",
        "dispatch_import_dead_letter": "DEAD_LETTERS_MAX_CONCURRENCY",
        "import_chunk_dead_letter": "DEAD_LETTERS_MAX_CONCURRENCY",
        "orders_dead_letter": "DEAD_LETTERS_MAX_CONCURRENCY",
        "project_sales": "READ_MODELS_MAX_CONCURRENCY", "email_low_stock": "READ_MODELS_MAX_CONCURRENCY",
        "sales_dead_letter": "DEAD_LETTERS_MAX_CONCURRENCY", "low_stock_dead_letter": "DEAD_LETTERS_MAX_CONCURRENCY",
        "recover_lost_changes": "DEAD_LETTERS_MAX_CONCURRENCY"}
# Lambda's default concurrency quota per account and region, of which 100 stay unreserved.
ACCOUNT_CONCURRENCY, UNRESERVED_MINIMUM = 1000, 100


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_queue_consumer_is_capped_by_its_stages_setting(templates: dict[str, dict[str, Any]], stage: str) -> None:
    template = templates[stage]
    stage_variables = CHALICE_CONFIG["stages"][stage]["environment_variables"]
    events = _sqs_events(template)

    assert set(events) == set(CAPS)
    for name, variable in CAPS.items():
        assert events[name]["ScalingConfig"]["MaximumConcurrency"] == int(stage_variables[variable]), name


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_api_has_its_stages_reserved_concurrency_which_no_pipeline_can_take(
        templates: dict[str, dict[str, Any]], stage: str) -> None:
    template = templates[stage]
    resources = template["Resources"]
    api = resources[functions(template)["api_handler"]]["Properties"]
    pipelines = sum(props["ScalingConfig"]["MaximumConcurrency"] for props in _sqs_events(template).values())

    assert api["ReservedConcurrentExecutions"] == (
        CHALICE_CONFIG["stages"][stage]["lambda_functions"]["api_handler"]["reserved_concurrency"])
    # Both stages in one account still leave Lambda's unreserved minimum, and room for the pipelines.
    reserved = sum(CHALICE_CONFIG["stages"][s]["lambda_functions"]["api_handler"]["reserved_concurrency"]
                   for s in ("dev", "prod"))
    assert reserved + UNRESERVED_MINIMUM + 2 * pipelines <= ACCOUNT_CONCURRENCY


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_api_stage_is_throttled_at_its_stages_rate_and_burst_answering_429_in_the_error_shape(
        templates: dict[str, dict[str, Any]], stage: str) -> None:
    (api,) = _of_type(templates[stage], "AWS::Serverless::Api").values()
    limits = CHALICE_CONFIG["stages"][stage]["api_throttling"]

    (settings,) = api["Properties"]["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        limits["rate_limit"], limits["burst_limit"])
    throttled = api["Properties"]["GatewayResponses"]["THROTTLED"]
    assert throttled["StatusCode"] == "429"
    body = throttled["ResponseTemplates"]["application/json"]
    assert body.startswith('{"Code": "TooManyRequestsError", "Message": ')
    assert throttled["ResponseParameters"]["Headers"] == {"X-Request-Id": "context.requestId"}


@pytest.mark.parametrize("stage, days", [("dev", 14), ("prod", 90)])
def test_the_api_logs_every_request_as_json_to_a_group_with_a_retention(
        templates: dict[str, dict[str, Any]], stage: str, days: int) -> None:
    template = templates[stage]
    (api,) = _of_type(template, "AWS::Serverless::Api").values()
    setting = api["Properties"]["AccessLogSetting"]
    group_id = setting["DestinationArn"]["Fn::GetAtt"][0]

    assert template["Resources"][group_id]["Properties"]["RetentionInDays"] == days
    fields = json.loads(setting["Format"])
    for field, variable in {"request_id": "$context.requestId", "ip": "$context.identity.sourceIp",
                            "route": "$context.resourcePath", "method": "$context.httpMethod",
                            "status": "$context.status", "latency_ms": "$context.responseLatency"}.items():
        assert fields[field] == variable
    assert template["Resources"]["ApiGatewayAccount"]["Condition"] == "SettingApiGatewayCloudWatchRole"


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    key_id = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]["Ref"]
    statements = resources[key_id]["Properties"]["KeyPolicy"]["Statement"]

    assert resources[key_id]["Properties"]["EnableKeyRotation"] is True
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and "kms:GenerateDataKey*" in s["Action"]
               for s in statements)


def test_every_consumed_queue_has_a_dead_letter_queue_and_a_visibility_of_six_timeouts(
        template: dict[str, Any]) -> None:
    resources = template["Resources"]
    dead_letter_queues = {r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                          for r in resources.values() if "RedrivePolicy" in r.get("Properties", {})}
    for name, props in _sqs_events(template).items():
        queue_id = props["Queue"]["Fn::GetAtt"][0]
        queue = resources[queue_id]["Properties"]
        timeout = resources[functions(template)[name]]["Properties"]["Timeout"]
        assert queue.get("VisibilityTimeout", 30) >= 6 * timeout, f"{queue_id}: < 6 x {timeout}"
        if queue_id in dead_letter_queues:
            continue  # the consumer of a DLQ is the last stop: its queue has no DLQ of its own

        dlq_id = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert resources[dlq_id]["Type"] == "AWS::SQS::Queue" and dlq_id != queue_id
        assert 1 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10
        assert queue["VisibilityTimeout"] >= 6 * timeout, f"{queue_id}: {queue['VisibilityTimeout']} < 6 x {timeout}"
        # A dead letter outlives the message it was: SQS keeps the original's enqueue time.
        assert resources[dlq_id]["Properties"]["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_functions_and_the_api_stage_are_traced(template: dict[str, Any]) -> None:
    for logical_id in functions(template).values():
        assert template["Resources"][logical_id]["Properties"]["Tracing"] == "Active", logical_id
    (api,) = _of_type(template, "AWS::Serverless::Api").values()
    assert api["Properties"]["TracingEnabled"] is True


def test_every_dead_letter_queue_every_function_and_every_state_machine_raises_an_alarm(
        template: dict[str, Any]) -> None:
    """The saga's step functions excepted: their errors are its control flow (a declined card is
    an error the state machine catches); a failed execution is what the state machine's alarm says."""
    alarms = _of_type(template, "AWS::CloudWatch::Alarm").values()
    watched = {json.dumps(d["Value"], sort_keys=True) for a in alarms for d in a["Properties"]["Dimensions"]}
    dead_letter_queues = {q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                          for q in _of_type(template, "AWS::SQS::Queue").values()
                          if "RedrivePolicy" in q["Properties"]}

    assert len(dead_letter_queues) == 7  # 4, and the sales, low-stock and stream-failure queues'
    for queue_id in dead_letter_queues:
        assert json.dumps({"Fn::GetAtt": [queue_id, "QueueName"]}, sort_keys=True) in watched, queue_id
    steps = {"order_saga_payment", "order_saga_order", "order_saga_notify"}
    for name, logical_id in functions(template).items():
        assert (json.dumps({"Ref": logical_id}, sort_keys=True) in watched) is (name not in steps), logical_id
    for logical_id in _of_type(template, "AWS::StepFunctions::StateMachine"):
        assert json.dumps({"Ref": logical_id}, sort_keys=True) in watched, logical_id
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)


@pytest.mark.parametrize("stage, days", [("dev", 14), ("prod", 90)])
def test_each_function_logs_to_its_own_group_with_a_retention(
        templates: dict[str, dict[str, Any]], stage: str, days: int) -> None:
    template = templates[stage]
    groups = {g["Properties"]["LogGroupName"]["Fn::Sub"]: g["Properties"]["RetentionInDays"]
              for g in _of_type(template, "AWS::Logs::LogGroup").values()}

    for name, logical_id in functions(template).items():
        assert template["Resources"][logical_id]["Properties"]["FunctionName"] == {
            "Fn::Sub": f"${{AWS::StackName}}-{name}"}
        assert groups[f"/aws/lambda/${{AWS::StackName}}-{name}"] == days


def test_every_function_is_told_every_resource_by_the_env_var_rule(template: dict[str, Any]) -> None:
    expected = {env_var_name(i): {"Ref": i} for i in app_resources({"Resources": RESOURCES})}
    for logical_id in functions(template).values():
        variables = template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        assert {k: v for k, v in variables.items() if k in expected} == expected, logical_id
        assert variables["STAGE"] == "dev"


def test_buckets_are_private_encrypted_and_abort_abandoned_uploads(template: dict[str, Any]) -> None:
    buckets = _of_type(template, "AWS::S3::Bucket")

    assert set(buckets) == {"UploadsBucket", "MediaBucket", "ImportsBucket"}
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True), logical_id
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        rules = props["LifecycleConfiguration"]["Rules"]
        assert {"DaysAfterInitiation": 1} in [r.get("AbortIncompleteMultipartUpload") for r in rules], logical_id


def test_a_bucket_may_notify_a_queue_only_through_a_policy_scoped_to_that_bucket(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    policies = _of_type(template, "AWS::SQS::QueuePolicy")
    for bucket_id, bucket in _of_type(template, "AWS::S3::Bucket").items():
        for notification in bucket["Properties"].get("NotificationConfiguration", {}).get("QueueConfigurations", []):
            queue_id = notification["Queue"]["Fn::GetAtt"][0]
            (policy_id,) = [i for i, p in policies.items() if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
            (statement,) = policies[policy_id]["Properties"]["PolicyDocument"]["Statement"]
            assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
            assert statement["Action"] == "sqs:SendMessage"
            bucket_name = bucket["Properties"]["BucketName"]["Fn::Sub"]
            assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
                "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket_name}"}
            assert policy_id in resources[bucket_id]["DependsOn"]


def test_unknown_paths_and_gateway_errors_answer_in_chalices_shape_with_a_request_id(
        template: dict[str, Any]) -> None:
    (api,) = _of_type(template, "AWS::Serverless::Api").values()
    responses = api["Properties"]["GatewayResponses"]

    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    for response_type in ("MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"):
        assert responses[response_type]["ResponseParameters"]["Headers"] == {"X-Request-Id": "context.requestId"}
        assert '"Code": ' in responses[response_type]["ResponseTemplates"]["application/json"]


def test_the_template_outputs_what_the_readme_has_a_newcomer_use(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]

    assert "${RestAPI}.execute-api" in outputs["EndpointURL"]["Value"]["Fn::Sub"]
    assert outputs["UserPoolId"]["Value"] == {"Ref": "UserPool"}
    assert outputs["UserPoolClientId"]["Value"] == {"Ref": "UserPoolClient"}
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_the_order_saga_is_its_definition_file_traced_logged_alarmed_and_may_invoke_only_its_steps(
        template: dict[str, Any]) -> None:
    resources = template["Resources"]
    saga = resources["OrderSagaStateMachine"]["Properties"]
    asl = json.loads((Path(__file__).resolve().parents[2] / "infra" / "order_saga.asl.json").read_text())

    assert saga["Definition"] == asl and saga["StateMachineType"] == "STANDARD"
    assert saga["TracingConfiguration"] == {"Enabled": True}
    assert saga["LoggingConfiguration"]["Level"] == "ALL"
    assert saga["LoggingConfiguration"]["IncludeExecutionData"] is False  # no payment data in the logs
    steps = {state["Parameters"]["FunctionName"] for state in asl["States"].values()
             if state.get("Resource") == "arn:aws:states:::lambda:invoke"}
    assert steps == {f"${{{name}}}" for name in saga["DefinitionSubstitutions"]}
    handlers = {v["Fn::Sub"].rsplit("${AWS::StackName}-", 1)[1] for v in saga["DefinitionSubstitutions"].values()}
    assert handlers == {"order_saga_payment", "order_saga_order", "order_saga_notify"} <= set(functions(template))
    role = resources[saga["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    assert statements["InvokeTheSagaSteps"]["Action"] == "lambda:InvokeFunction"
    assert sorted(statements["InvokeTheSagaSteps"]["Resource"], key=json.dumps) == sorted(
        saga["DefinitionSubstitutions"].values(), key=json.dumps)
    alarm = resources["OrderSagaStateMachineFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
