"""Every function of the packaged template can do what its code does, and nothing more.

Actions and the resource types they accept are checked against the IAM Service Authorization
data cfn-lint ships (cfnlint/data/AdditionalSpecs/Policies.json), offline.
"""

from __future__ import annotations

import json
import re
from importlib import resources as package_data
from typing import Any

import pytest

from infra.package import functions

pytestmark = pytest.mark.timeout(900)

# The only actions that may take Resource "*": AWS defines no resource type for them.
WILDCARD_RESOURCE_ALLOWED = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "dynamodb:ListStreams"}

# What a reference into the stack is, in IAM's resource-type names.
_TYPE_OF_ARN = {
    "AWS::DynamoDB::Table": "table",
    "AWS::S3::Bucket": "bucket",
    "AWS::SQS::Queue": "queue",
    "AWS::SNS::Topic": "topic",
    "AWS::Cognito::UserPool": "userpool",
    "AWS::Events::EventBus": "event-bus",
}
# Resources whose Ref is their ARN.
_TYPE_OF_REF = {
    "AWS::SNS::Topic": "topic",
    "AWS::SecretsManager::Secret": "Secret",
    "AWS::StepFunctions::StateMachine": "statemachine",
}
# The one reference outside the stack: SES identities are verified outside it (the sender's
# address or domain, and in SES's sandbox each recipient), so the mail step may send as the
# account's identities in its region, and nothing wider.
_MAIL_IDENTITIES = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"
_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.([A-Za-z]+))?\}")


def _iam_actions() -> dict[str, Any]:
    with package_data.files("cfnlint").joinpath("data/AdditionalSpecs/Policies.json").open() as f:
        return json.load(f)


IAM = _iam_actions()


def _statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Function handler name -> the statements of its role's policies."""
    resources = template["Resources"]
    found = {}
    for name, logical_id in functions(template).items():
        role = resources[resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]]
        found[name] = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_type(resource: Any, template: dict[str, Any]) -> str:
    """IAM's resource type of a reference into the stack ("table", "index", "object", ...).

    Fails the test for anything that is not a reference to a resource of the template.
    """
    resources = template["Resources"]
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        if attribute == "StreamArn":  # a table's stream (the domain events' publishers read it)
            assert resources[logical_id]["Type"] == "AWS::DynamoDB::Table", resource
            return "stream"
        assert attribute == "Arn", resource
        return _TYPE_OF_ARN[resources[logical_id]["Type"]]
    if isinstance(resource, dict) and "Ref" in resource:
        type_of_ref = resources[resource["Ref"]]["Type"]
        assert type_of_ref in _TYPE_OF_REF, f"only these resources' Ref is an ARN: {sorted(_TYPE_OF_REF)}: {resource}"
        return _TYPE_OF_REF[type_of_ref]
    assert isinstance(resource, dict) and set(resource) == {"Fn::Sub"}, f"not a reference into the stack: {resource}"
    text = resource["Fn::Sub"]
    if text == _MAIL_IDENTITIES:
        return "identity"
    referenced = [m.group(1) for m in _SUB_REFERENCE.finditer(text) if not m.group(1).startswith("AWS")]
    assert len(referenced) == 1 and referenced[0] in resources, f"{text} names no one resource of the stack"
    logical_id = referenced[0]
    type_ = resources[logical_id]["Type"]
    if type_ == "AWS::DynamoDB::Table":
        index = re.fullmatch(rf"\$\{{{logical_id}\.Arn\}}/index/([a-z-]+)", text)
        assert index, text
        assert index.group(1) in {i["IndexName"] for i in resources[logical_id]["Properties"]["GlobalSecondaryIndexes"]}
        return "index"
    if type_ == "AWS::S3::Bucket":
        assert re.fullmatch(rf"\$\{{{logical_id}\.Arn\}}/[a-z]+/\*", text), f"objects under a prefix: {text}"
        return "object"
    if type_ == "AWS::Logs::LogGroup":
        assert text.endswith(f":log-group:${{{logical_id}}}:*"), text
        return "log-stream"
    raise AssertionError(f"unexpected reference {text}")


def test_each_function_has_a_role_of_its_own_with_inline_policies_only(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    roles = [resources[i]["Properties"]["Role"]["Fn::GetAtt"][0] for i in functions(template).values()]

    assert len(roles) == len(set(roles)) == 20
    for role_id in roles:
        props = resources[role_id]["Properties"]
        assert set(props) == {"AssumeRolePolicyDocument", "Policies"}  # no managed policies, no name
        (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_every_statement_allows_named_actions_that_exist_in_iam(template: dict[str, Any]) -> None:
    for function, statements in _statements(template).items():
        for statement in statements:
            assert statement["Effect"] == "Allow", (function, statement)
            assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, (function, statement)
            for action in _as_list(statement["Action"]):
                service, _, name = action.partition(":")
                assert "*" not in action, (function, action)
                assert name.lower() in IAM[service]["Actions"], f"{function}: {action} is not an IAM action"


def test_resources_are_references_into_the_stack_of_a_type_each_action_accepts(template: dict[str, Any]) -> None:
    for function, statements in _statements(template).items():
        for statement in statements:
            for action in _as_list(statement["Action"]):
                service, _, name = action.partition(":")
                accepted = set(IAM[service]["Actions"][name.lower()].get("Resources", []))
                for resource in _as_list(statement["Resource"]):
                    if resource == "*":
                        assert action in WILDCARD_RESOURCE_ALLOWED, f"{function}: {action} on *"
                        assert not accepted, f"{action} has resource types {accepted}: name one"
                        continue
                    type_ = _resource_type(resource, template)
                    assert type_ in accepted, f"{function}: {action} does not apply to a {type_} ({resource})"


def test_the_wildcard_allow_list_is_exactly_what_aws_gives_no_resource_for() -> None:
    for action in WILDCARD_RESOURCE_ALLOWED:
        service, _, name = action.partition(":")
        assert IAM[service]["Actions"][name.lower()].get("Resources", []) == []


def _grants(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(action, resource as JSON) pairs of a function's statements."""
    return {(a, json.dumps(r, sort_keys=True)) for s in statements for a in _as_list(s["Action"])
            for r in _as_list(s["Resource"])}


def _arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def test_only_the_api_places_orders_and_only_the_orders_consumer_polls_the_orders_queue(
        template: dict[str, Any]) -> None:
    grants = {f: _grants(s) for f, s in _statements(template).items()}

    assert {f for f, g in grants.items() if ("sqs:SendMessage", _arn("OrdersQueue")) in g} == {"api_handler"}
    assert {f for f, g in grants.items() if ("sqs:ReceiveMessage", _arn("OrdersQueue")) in g} == {"consume_orders"}


def test_no_function_but_the_cleanup_deletes_objects_from_uploads(template: dict[str, Any]) -> None:
    grants = {f: _grants(s) for f, s in _statements(template).items()}
    uploads = json.dumps({"Fn::Sub": "${UploadsBucket.Arn}/uploads/*"}, sort_keys=True)

    assert {f for f, g in grants.items() if ("s3:DeleteObject", uploads) in g} == {"cleanup"}


def test_whoever_reads_objects_of_a_bucket_may_list_it_so_a_missing_key_is_a_404_not_a_403(
        template: dict[str, Any]) -> None:
    for function, grants in ((f, _grants(s)) for f, s in _statements(template).items()):
        for action, resource in grants:
            if action != "s3:GetObject":
                continue
            bucket_id = json.loads(resource)["Fn::Sub"].split(".Arn}")[0].lstrip("${")
            may_list = ("s3:ListBucket", _arn(bucket_id)) in grants
            # The API only presigns rendition links: the reader is the browser, not the function.
            assert may_list or function == "api_handler", f"{function} reads {bucket_id} but may not list it"


def test_every_consumer_polls_exactly_the_queue_its_event_source_reads(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    statements = _statements(template)
    for name, logical_id in functions(template).items():
        queues = [e["Properties"]["Queue"] for e in resources[logical_id]["Properties"].get("Events", {}).values()
                  if e["Type"] == "SQS"]
        polled = [s["Resource"] for s in statements[name] if "sqs:ReceiveMessage" in s["Action"]]
        assert polled == queues, name
        for statement in statements[name]:
            if "sqs:ReceiveMessage" in statement["Action"]:
                assert sorted(statement["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                                       "sqs:ReceiveMessage"]
