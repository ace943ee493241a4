"""How the IAM audit of the app tests (tests/support/iam_audit.py) reads a botocore call."""

from __future__ import annotations

import pytest

from tests.support.iam_audit import Call, iam_requests

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/"


def _requests(service: str, operation: str, **params: object) -> list[tuple[str, str]]:
    return iam_requests(Call("f", service, operation, dict(params)), region="us-east-1", account="123456789012")


def test_a_transaction_is_authorised_item_by_item_as_the_writes_it_holds() -> None:
    assert _requests("dynamodb", "TransactWriteItems", TransactItems=[
        {"Update": {"TableName": "Products"}}, {"Put": {"TableName": "Orders"}},
        {"ConditionCheck": {"TableName": "Idempotency"}}]) == [
        ("dynamodb:UpdateItem", TABLE + "Products"), ("dynamodb:PutItem", TABLE + "Orders"),
        ("dynamodb:ConditionCheckItem", TABLE + "Idempotency")]


def test_a_query_of_an_index_is_authorised_on_the_index() -> None:
    assert _requests("dynamodb", "Query", TableName="Products", IndexName="owner-index") == [
        ("dynamodb:Query", TABLE + "Products/index/owner-index")]


def test_object_reads_deletes_and_listings_map_to_their_s3_actions() -> None:
    assert _requests("s3", "HeadObject", Bucket="b", Key="imports/a.csv") == [
        ("s3:GetObject", "arn:aws:s3:::b/imports/a.csv")]
    assert _requests("s3", "DeleteObjects", Bucket="b", Delete={"Objects": [{"Key": "x"}, {"Key": "y"}]}) == [
        ("s3:DeleteObject", "arn:aws:s3:::b/x"), ("s3:DeleteObject", "arn:aws:s3:::b/y")]
    assert _requests("s3", "ListObjectsV2", Bucket="b", Prefix="uploads/") == [("s3:ListBucket", "arn:aws:s3:::b")]


def test_queue_urls_and_topic_batches_become_arns_and_actions() -> None:
    assert _requests("sqs", "SendMessage", QueueUrl="http://127.0.0.1:5000/123456789012/orders") == [
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:orders")]
    assert _requests("sns", "PublishBatch", TopicArn="arn:aws:sns:us-east-1:123456789012:t") == [
        ("sns:Publish", "arn:aws:sns:us-east-1:123456789012:t")]


def test_an_operation_the_audit_does_not_know_is_an_error_not_a_pass() -> None:
    with pytest.raises(KeyError, match="dynamodb:ExecuteStatement"):
        _requests("dynamodb", "ExecuteStatement", Statement="SELECT * FROM t")


def test_mail_is_authorised_on_the_senders_identity_and_a_user_lookup_on_the_pool() -> None:
    assert _requests("sesv2", "SendEmail", FromEmailAddress="Shop <no-reply@shop.example.com>",
                     Destination={"ToAddresses": ["a@example.com"]}) == [
        ("ses:SendEmail", "arn:aws:ses:us-east-1:123456789012:identity/no-reply@shop.example.com")]
    assert _requests("cognito-idp", "ListUsers", UserPoolId="us-east-1_abc", Filter='sub = "x"') == [
        ("cognito-idp:ListUsers", "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc")]
