"""The container's boto3 clients: each made on first use, then reused for the container's life.

Adapters take a zero-argument function giving their client (`lambda: aws.s3`), so a function
builds only the clients its handler touches: the API's GET path never creates an SQS or S3
client (~0.1 s each on a cold start), nor imports boto3 (~0.1 s more than the botocore pynamodb
needs anyway). pynamodb makes its own DynamoDB connection per model.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient

__all__ = ["AwsClients"]


class AwsClients:
    def __init__(self, region: str) -> None:
        self.region = region

    @cached_property
    def s3(self) -> S3Client:
        import boto3

        # SigV4 for presigned URLs and POST policies: boto3 still presigns with SigV2 in us-east-1.
        return boto3.client("s3", region_name=self.region, config=Config(signature_version="s3v4"))

    @cached_property
    def sqs(self) -> SQSClient:
        import boto3

        return boto3.client("sqs", region_name=self.region)

    @cached_property
    def sns(self) -> SNSClient:
        import boto3

        return boto3.client("sns", region_name=self.region)

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        import boto3

        return boto3.client("secretsmanager", region_name=self.region)

    @cached_property
    def dynamodb_bulk(self) -> DynamoDBClient:
        """For batch writes of requests built from validated data: botocore's client-side
        parameter validation would cost more CPU than the import's own work."""
        import boto3

        return boto3.client("dynamodb", region_name=self.region,
                            config=Config(parameter_validation=False, retries={"mode": "standard"}))

    @cached_property
    def stepfunctions(self) -> SFNClient:
        import boto3

        return boto3.client("stepfunctions", region_name=self.region)

    @cached_property
    def sesv2(self) -> SESV2Client:
        import boto3

        return boto3.client("sesv2", region_name=self.region)

    @cached_property
    def cognito_idp(self) -> CognitoIdentityProviderClient:
        import boto3

        return boto3.client("cognito-idp", region_name=self.region)

    @cached_property
    def events(self) -> EventBridgeClient:
        import boto3

        return boto3.client("events", region_name=self.region)

    @cached_property
    def dynamodbstreams(self) -> DynamoDBStreamsClient:
        import boto3

        return boto3.client("dynamodbstreams", region_name=self.region)
