"""infra/package.py's steps, each on a small Chalice-shaped template (no chalice, no network)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from infra.package import (
    PackagingError,
    add_alarms,
    add_dependencies_layer,
    add_gateway_responses,
    add_log_groups,
    add_resource_env,
    finish,
    functions,
    grant_least_privilege,
    load_handlers_through_app,
    name_functions,
    trace_everything,
    wire_event_source_mappings,
    wire_sqs_events,
)
from infra.policies import POLICIES, policy_document

pytestmark = pytest.mark.timeout(30)

RESOURCES: dict[str, Any] = {
    "Resources": {
        "OrdersQueueDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "OrdersQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "VisibilityTimeout": 180,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["OrdersQueueDeadLetterQueue", "Arn"]},
                              "maxReceiveCount": 5}}},
        "OrdersQueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {}},
        "ProductsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "OrdersTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "DomainEventsFailureQueueDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "DomainEventsFailureQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DomainEventsFailureQueueDeadLetterQueue", "Arn"]},
                              "maxReceiveCount": 5}}},
        **{mapping: {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": {"Fn::GetAtt": [table, "StreamArn"]},
            "FunctionName": {"Fn::Sub": f"${{AWS::StackName}}-{handler}"},
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["DomainEventsFailureQueue", "Arn"]}}}}}
           for mapping, table, handler in (("ProductChangesMapping", "ProductsTable", "publish_product_events"),
                                           ("OrderChangesMapping", "OrdersTable", "publish_order_events"))},
    }
}


def _role() -> dict[str, Any]:
    return {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}, "Policies": [
        {"PolicyName": "x", "PolicyDocument": {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}}]}}


def _function(handler: str, role: str, events: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"Handler": handler, "Runtime": "python3.13", "Architectures": ["arm64"], "Timeout": 30,
                             "Environment": {"Variables": {"STAGE": "dev"}}, "Role": {"Fn::GetAtt": [role, "Arn"]}}
    if events:
        props["Events"] = events
    return {"Type": "AWS::Serverless::Function", "Properties": props}


def chalice_template() -> dict[str, Any]:
    """What `chalice package --merge-template` gives for an API and one queue consumer."""
    sqs_event = {"Type": "SQS", "Properties": {
        "Queue": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:OrdersQueue"},
        "BatchSize": 10, "ScalingConfig": {"MaximumConcurrency": 2}}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "ApiHandlerRole": _role(),
            "APIHandler": _function("app.app", "ApiHandlerRole"),
            "RestAPI": {"Type": "AWS::Serverless::Api", "Properties": {"StageName": "api"}},
            "ConsumeOrdersRole": _role(),
            "ConsumeOrders": _function("chalicelib.entrypoints.order_events.consume_orders", "ConsumeOrdersRole",
                                       {"ConsumeOrdersSqsEventSource": sqs_event}),
            # The streams' publishers: pure functions, their mappings are infra/resources.json's.
            "PublishProductEventsRole": _role(),
            "PublishProductEvents": _function("chalicelib.entrypoints.stream_events.publish_product_events",
                                              "PublishProductEventsRole"),
            "PublishOrderEventsRole": _role(),
            "PublishOrderEvents": _function("chalicelib.entrypoints.stream_events.publish_order_events",
                                            "PublishOrderEventsRole"),
            **copy.deepcopy(RESOURCES["Resources"]),
        },
        "Outputs": {},
    }


def test_functions_are_found_by_their_chalice_names() -> None:
    assert functions(chalice_template()) == {"api_handler": "APIHandler", "consume_orders": "ConsumeOrders",
                                             "publish_product_events": "PublishProductEvents",
                                             "publish_order_events": "PublishOrderEvents"}


def test_a_stream_mapping_waits_for_the_function_it_names() -> None:
    template = chalice_template()

    wire_event_source_mappings(template)

    assert template["Resources"]["ProductChangesMapping"]["DependsOn"] == ["PublishProductEvents"]
    assert template["Resources"]["OrderChangesMapping"]["DependsOn"] == ["PublishOrderEvents"]


def test_a_stream_mapping_naming_no_function_of_the_app_is_refused() -> None:
    template = chalice_template()
    del template["Resources"]["PublishOrderEvents"]

    with pytest.raises(ValueError, match="OrderChangesMapping: the app has no function 'publish_order_events'"):
        wire_event_source_mappings(template)


def test_streams_falling_behind_and_batches_given_up_on_are_alarmed() -> None:
    template = finish(chalice_template(), resources=RESOURCES, stage="dev")
    resources = template["Resources"]

    age = resources["ProductChangesMappingIteratorAgeAlarm"]["Properties"]
    assert (age["MetricName"], age["Threshold"]) == ("IteratorAge", 60_000)
    assert age["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PublishProductEvents"}}]
    assert "DomainEventsFailureQueueDepthAlarm" in resources
    assert "DomainEventsFailureQueueDeadLetterQueueDepthAlarm" in resources


def test_event_handlers_are_loaded_through_app_py_and_keep_their_names() -> None:
    template = chalice_template()

    load_handlers_through_app(template)

    assert template["Resources"]["ConsumeOrders"]["Properties"]["Handler"] == "app.consume_orders"
    assert template["Resources"]["APIHandler"]["Properties"]["Handler"] == "app.app"
    assert template["Resources"]["PublishOrderEvents"]["Properties"]["Handler"] == "app.publish_order_events"
    assert functions(template) == {"api_handler": "APIHandler", "consume_orders": "ConsumeOrders",
                                   "publish_product_events": "PublishProductEvents",
                                   "publish_order_events": "PublishOrderEvents"}


def test_an_sqs_event_names_its_queue_by_reference_and_reports_partial_batch_failures() -> None:
    template = chalice_template()

    wire_sqs_events(template)

    props = template["Resources"]["ConsumeOrders"]["Properties"]["Events"]["ConsumeOrdersSqsEventSource"]["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["OrdersQueue", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": 2}  # Chalice's, from the decorator, kept


def test_an_sqs_event_on_a_queue_the_template_does_not_define_is_refused() -> None:
    template = chalice_template()
    del template["Resources"]["OrdersQueue"]

    with pytest.raises(ValueError, match="no queue 'OrdersQueue'"):
        wire_sqs_events(template)


def test_each_role_gets_exactly_its_functions_policy_and_the_deny_all_placeholder_is_gone() -> None:
    template = chalice_template()

    grant_least_privilege(template)

    (policy,) = template["Resources"]["ConsumeOrdersRole"]["Properties"]["Policies"]
    assert policy["PolicyDocument"] == policy_document("consume_orders", "ConsumeOrdersLogGroup")
    assert "Deny" not in json.dumps(template)


def test_two_functions_sharing_a_role_are_refused() -> None:
    template = chalice_template()
    template["Resources"]["ConsumeOrders"]["Properties"]["Role"] = {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}

    with pytest.raises(ValueError, match="share the role ApiHandlerRole"):
        grant_least_privilege(template)


def test_a_function_without_a_policy_is_refused() -> None:
    template = chalice_template()
    template["Resources"]["ConsumeOrders"]["Properties"]["Handler"] = "chalicelib.entrypoints.x.new_handler"

    with pytest.raises(KeyError, match="new_handler"):
        grant_least_privilege(template)


def test_every_policy_grants_logs_on_its_own_log_group_and_tracing() -> None:
    document = policy_document("cleanup", "CleanupLogGroup")

    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["Logs"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${CleanupLogGroup}:*"}
    assert by_sid["Tracing"] == {"Sid": "Tracing", "Effect": "Allow", "Resource": "*",
                                 "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]}
    assert set(POLICIES) == {"api_handler", "consume_orders", "orders_dead_letter", "order_saga_payment",
                             "order_saga_order", "order_saga_notify", "process_images", "dispatch_import",
                             "import_chunk", "dispatch_import_dead_letter", "import_chunk_dead_letter", "cleanup",
                             "publish_product_events", "publish_order_events", "recover_lost_changes",
                             "project_sales", "sales_dead_letter", "email_low_stock", "low_stock_dead_letter",
                             "rebuild_sales"}


def test_functions_are_named_after_the_stack_and_log_to_a_group_with_retention() -> None:
    template = chalice_template()

    name_functions(template)
    add_log_groups(template, retention_days=14)

    resources = template["Resources"]
    assert resources["ConsumeOrders"]["Properties"]["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-consume_orders"}
    assert resources["APIHandlerLogGroup"]["Properties"] == {
        "LogGroupName": {"Fn::Sub": "/aws/lambda/${AWS::StackName}-api_handler"}, "RetentionInDays": 14}
    assert resources["APIHandler"]["DependsOn"] == ["APIHandlerLogGroup"]


def test_every_function_is_told_every_app_resource_by_the_env_var_rule() -> None:
    template = chalice_template()

    add_resource_env(template, RESOURCES)

    variables = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert variables == {"STAGE": "dev", "ORDERS_QUEUE_DEAD_LETTER_QUEUE": {"Ref": "OrdersQueueDeadLetterQueue"},
                         "ORDERS_QUEUE": {"Ref": "OrdersQueue"}, "PRODUCTS_TABLE": {"Ref": "ProductsTable"},
                         "ORDERS_TABLE": {"Ref": "OrdersTable"},
                         "DOMAIN_EVENTS_FAILURE_QUEUE": {"Ref": "DomainEventsFailureQueue"},
                         "DOMAIN_EVENTS_FAILURE_QUEUE_DEAD_LETTER_QUEUE": {
                             "Ref": "DomainEventsFailureQueueDeadLetterQueue"}}


def test_a_stage_variable_that_would_hide_a_resource_variable_is_refused() -> None:
    template = chalice_template()
    template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]["ORDERS_QUEUE"] = "mine"

    with pytest.raises(ValueError, match="ORDERS_QUEUE"):
        add_resource_env(template, RESOURCES)


def test_functions_and_the_api_stage_are_traced() -> None:
    template = chalice_template()
    template["Resources"]["APIHandler"]["Properties"]["Tracing"] = "PassThrough"

    trace_everything(template)

    assert template["Resources"]["APIHandler"]["Properties"]["Tracing"] == "Active"
    assert template["Resources"]["RestAPI"]["Properties"]["TracingEnabled"] is True


def _render(body_template: str, **context: str) -> Any:
    """A gateway response body as API Gateway would fill it in."""
    for name, value in sorted(context.items(), key=lambda kv: -len(kv[0])):
        body_template = body_template.replace(f"$context.{name}", value)
    return json.loads(body_template)


def test_gateway_responses_carry_the_request_id_in_chalices_error_shape() -> None:
    template = chalice_template()

    add_gateway_responses(template)

    responses = template["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    assert set(responses) >= {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        assert response["ResponseParameters"] == {"Headers": {"X-Request-Id": "context.requestId"}}
    unknown = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert unknown["StatusCode"] == "404"
    assert _render(unknown["ResponseTemplates"]["application/json"]) == {
        "Code": "NotFoundError", "Message": "no route matches this method and path"}
    default = responses["DEFAULT_5XX"]["ResponseTemplates"]["application/json"]
    assert _render(default, **{"error.messageString": '"Internal server error"'}) == {
        "Code": "InternalServerError", "Message": "Internal server error"}


def test_every_dead_letter_queue_and_every_function_has_an_alarm_to_the_alarm_topic() -> None:
    template = chalice_template()

    add_alarms(template)

    alarms = {i: r["Properties"] for i, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"OrdersQueueDeadLetterQueueDepthAlarm", "APIHandlerErrorsAlarm", "ConsumeOrdersErrorsAlarm",
                           "PublishProductEventsErrorsAlarm", "PublishOrderEventsErrorsAlarm",
                           "DomainEventsFailureQueueDeadLetterQueueDepthAlarm", "DomainEventsFailureQueueDepthAlarm",
                           "ProductChangesMappingIteratorAgeAlarm", "OrderChangesMappingIteratorAgeAlarm"}
    dlq = alarms["OrdersQueueDeadLetterQueueDepthAlarm"]
    assert (dlq["Namespace"], dlq["MetricName"], dlq["Threshold"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 1)
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["OrdersQueueDeadLetterQueue",
                                                                                "QueueName"]}}]
    assert alarms["ConsumeOrdersErrorsAlarm"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ConsumeOrders"}}]
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())


def test_a_template_without_the_merged_resources_is_refused() -> None:
    template = chalice_template()
    del template["Resources"]["ProductsTable"]

    with pytest.raises(ValueError, match="ProductsTable"):
        finish(template, resources=RESOURCES, stage="dev")


def test_finishing_leaves_chalices_template_as_it_was() -> None:
    template = chalice_template()
    before = copy.deepcopy(template)

    finished = finish(template, resources=RESOURCES, stage="prod")

    assert template == before
    assert finished["Resources"]["ConsumeOrdersLogGroup"]["Properties"]["RetentionInDays"] == 90


def test_every_function_gets_the_one_dependency_layer_for_its_runtime_and_architecture() -> None:
    template = chalice_template()

    add_dependencies_layer(template, architecture="arm64", lock_digest="ab" * 32)

    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "./layer.zip"
    assert (layer["Properties"]["CompatibleRuntimes"], layer["Properties"]["CompatibleArchitectures"]) == (
        ["python3.13"], ["arm64"])
    for logical_id in functions(template).values():
        assert template["Resources"][logical_id]["Properties"]["Layers"] == [{"Ref": "DependenciesLayer"}]


@pytest.mark.parametrize("runtime, architectures", [("python3.11", ["arm64"]), ("python3.13", ["x86_64"])])
def test_a_function_of_another_runtime_or_architecture_than_the_layers_is_refused(
        runtime: str, architectures: list[str]) -> None:
    template = chalice_template()
    template["Resources"]["ConsumeOrders"]["Properties"].update(Runtime=runtime, Architectures=architectures)

    with pytest.raises(PackagingError, match="consume_orders"):
        add_dependencies_layer(template, architecture="arm64", lock_digest="")
