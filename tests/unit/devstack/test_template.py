"""Reading a CloudFormation template without AWS: intrinsics, creation order, physical names."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.template import StackIdentity, TemplateError, dependency_order, evaluate, physical_name, references
from infra.resources import load_template

STACK = StackIdentity("storefront-dev", "eu-west-1", "111122223333")
REFS = {"OrdersQueue": "https://sqs/orders", "Bucket": "media-bucket"}
ATTRIBUTES = {("OrdersQueue", "Arn"): "arn:aws:sqs:eu-west-1:111122223333:orders"}


def ev(value: Any) -> Any:
    def get_att(logical_id: str, attribute: str) -> str:
        return ATTRIBUTES[(logical_id, attribute)]

    return evaluate(value, pseudo=STACK.pseudo_parameters(), ref=REFS.__getitem__, get_att=get_att, where="Thing")


def test_ref_gives_a_resource_or_a_pseudo_parameter() -> None:
    assert ev({"Ref": "OrdersQueue"}) == "https://sqs/orders"
    assert ev([{"Ref": "AWS::StackName"}, {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}]) == [
        "storefront-dev",
        "eu-west-1",
        "111122223333",
    ]
    assert ev({"Ref": "AWS::Partition"}) == "aws"


def test_the_partition_follows_the_region() -> None:
    assert StackIdentity("s", "cn-north-1", "1").partition == "aws-cn"
    assert StackIdentity("s", "us-gov-west-1", "1").partition == "aws-us-gov"


def test_get_att_takes_a_list_or_a_dotted_string() -> None:
    arn = "arn:aws:sqs:eu-west-1:111122223333:orders"

    assert ev({"Fn::GetAtt": ["OrdersQueue", "Arn"]}) == arn
    assert ev({"Fn::GetAtt": "OrdersQueue.Arn"}) == arn


def test_sub_fills_in_pseudo_parameters_refs_and_attributes_and_keeps_escaped_ones() -> None:
    text = "${AWS::StackName}-uploads-${AWS::AccountId} ${Bucket} ${OrdersQueue.Arn} ${!Literal}"

    assert ev({"Fn::Sub": text}) == (
        "storefront-dev-uploads-111122223333 media-bucket arn:aws:sqs:eu-west-1:111122223333:orders ${Literal}"
    )


def test_sub_variables_are_evaluated_and_win_over_resources() -> None:
    value = {"Fn::Sub": ["${Bucket}/${Name}", {"Bucket": "other", "Name": {"Ref": "AWS::Region"}}]}

    assert ev(value) == "other/eu-west-1"


def test_join_joins_evaluated_values() -> None:
    assert ev({"Fn::Join": [":", ["a", {"Ref": "Bucket"}, {"Ref": "AWS::Region"}]]}) == "a:media-bucket:eu-west-1"


def test_intrinsics_nested_in_properties_are_evaluated_and_the_rest_is_kept() -> None:
    props = {"Policy": {"Statement": [{"Resource": {"Fn::GetAtt": ["OrdersQueue", "Arn"]}, "Effect": "Allow"}]}}

    assert ev(props) == {
        "Policy": {"Statement": [{"Resource": "arn:aws:sqs:eu-west-1:111122223333:orders", "Effect": "Allow"}]}
    }


@pytest.mark.parametrize(
    "value, message",
    [
        ({"Fn::If": ["IsProd", "a", "b"]}, "Fn::If is not supported"),
        ({"Fn::ImportValue": "x"}, "Fn::ImportValue is not supported"),
        ({"Ref": "AWS::NoValue"}, "AWS::NoValue is not supported"),
        ({"Ref": "Missing"}, "unknown resource Missing"),
        ({"Fn::GetAtt": ["OrdersQueue", "Nope"]}, "OrdersQueue.Nope is not available"),
        ({"Fn::Sub": "${Missing}"}, "unknown resource Missing"),
        ({"Fn::Join": [",", "not a list"]}, "Fn::Join takes a list"),
    ],
)
def test_what_the_evaluator_does_not_support_is_an_error_naming_the_resource(value: Any, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as raised:
        ev(value)

    assert str(raised.value).startswith("Thing: ")


def test_references_are_found_in_ref_get_att_and_sub_but_not_in_pseudo_parameters() -> None:
    value = {
        "A": {"Ref": "Topic"},
        "B": [{"Fn::GetAtt": ["Queue", "Arn"]}],
        "C": {"Fn::Sub": "${AWS::Region}-${Bucket}-${Table.Arn}-${!Escaped}"},
        "D": {"Fn::Sub": ["${Local}", {"Local": {"Ref": "Pool"}}]},
    }

    assert references(value, where="X") == {"Topic", "Queue", "Bucket", "Table", "Pool"}


def test_in_the_real_template_everything_is_created_after_what_it_needs() -> None:
    resources = load_template()["Resources"]

    order = dependency_order(resources)

    assert sorted(order) == sorted(resources)
    position = {logical_id: i for i, logical_id in enumerate(order)}
    assert position["ImageUploadsQueueDeadLetterQueue"] < position["ImageUploadsQueue"]
    assert position["ImageUploadsQueue"] < position["ImageUploadsQueuePolicy"] < position["UploadsBucket"]
    assert position["ImportChunksTopic"] < position["ImportChunksSubscription"]
    assert position["ImportChunksQueue"] < position["ImportChunksSubscription"]
    assert position["UserPool"] < position["UserPoolClient"]


def test_depends_on_orders_like_a_reference_and_ties_keep_template_order() -> None:
    resources = {
        "Late": {"Type": "T", "DependsOn": "Early"},
        "Other": {"Type": "T"},
        "Early": {"Type": "T", "DependsOn": ["Other"]},
        "Last": {"Type": "T", "Properties": {"X": {"Ref": "Late"}}},
    }

    assert dependency_order(resources) == ["Other", "Early", "Late", "Last"]


def test_a_cycle_is_an_error_naming_the_ids_on_it() -> None:
    resources = {
        "Free": {"Type": "T"},
        "A": {"Type": "T", "Properties": {"X": {"Fn::GetAtt": ["B", "Arn"]}}},
        "B": {"Type": "T", "Properties": {"X": {"Fn::Sub": "${C}"}}},
        "C": {"Type": "T", "DependsOn": "A"},
    }

    with pytest.raises(TemplateError, match="cycle: A -> B -> C -> A"):
        dependency_order(resources)


def test_a_dependency_on_an_unknown_resource_is_an_error() -> None:
    with pytest.raises(TemplateError, match="A: refers to unknown resource"):
        dependency_order({"A": {"Type": "T", "DependsOn": "Ghost"}})


def test_physical_names_are_readable_and_deterministic() -> None:
    assert physical_name("storefront-dev", "OrdersQueue", max_length=80) == "storefront-dev-OrdersQueue"
    assert physical_name("storefront-dev", "Jobs", max_length=80, suffix=".fifo") == "storefront-dev-Jobs.fifo"
    bucket = physical_name("Storefront-Dev", "MediaBucket", max_length=63, lowercase=True)
    assert bucket == "storefront-dev-mediabucket"


def test_a_name_too_long_is_cut_and_two_long_ids_still_differ() -> None:
    first = physical_name("storefront-dev", "A" * 100 + "One", max_length=80)
    second = physical_name("storefront-dev", "A" * 100 + "Two", max_length=80)

    assert len(first) == len(second) == 80
    assert first != second
    assert first == physical_name("storefront-dev", "A" * 100 + "One", max_length=80)
