"""What each Lambda function may do: the one definition of every function's IAM policy.

Worked out from the code each handler reaches through ``chalicelib.bootstrap`` (the adapters
it builds and the calls they make). Resources are references into the stack (``Fn::GetAtt`` /
``Fn::Sub`` on logical ids of infra/resources.json), never names. Only X-Ray's two write
actions take ``*``: AWS defines no resource for them.

Notes on IAM's view of the calls:
- TransactWriteItems has no action of its own: each item is checked as the PutItem, UpdateItem,
  DeleteItem or ConditionCheckItem it is. BatchWriteItem and BatchGetItem do have their own.
- HeadObject is authorised as s3:GetObject; a presigned URL or POST acts with the permissions of
  the role that signed it (s3:GetObject for rendition links, s3:PutObject for upload forms).
- PublishBatch is authorised as sns:Publish.
- S3 answers a GET or HEAD of a missing key with 404 only to a caller that may list the bucket,
  else with 403; the adapters tell "the file is gone" (a permanent outcome) from a failure by
  that 404, so the functions that read uploads also get s3:ListBucket on that bucket.
- An SQS event source mapping polls with the function's role: ReceiveMessage, DeleteMessage,
  GetQueueAttributes on its queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "POLICIES",
    "Grant",
    "bucket",
    "index",
    "objects",
    "policy_document",
    "queue",
    "table",
    "topic",
    "log_streams",
    "stream",
    "event_bus",
    "state_machine",
    "secret",
    "user_pool",
    "mail_identities",
]

Intrinsic = dict[str, Any] | str


@dataclass(frozen=True)
class Grant:
    """Some actions on some resources (one IAM statement)."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[Intrinsic, ...]


def table(logical_id: str) -> Intrinsic:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def index(logical_id: str, index_name: str) -> Intrinsic:
    return {"Fn::Sub": f"${{{logical_id}.Arn}}/index/{index_name}"}


def bucket(logical_id: str) -> Intrinsic:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def objects(logical_id: str, prefix: str) -> Intrinsic:
    """Objects of a bucket under ``prefix`` (``"uploads/"`` -> ``arn:...:bucket/uploads/*``)."""
    return {"Fn::Sub": f"${{{logical_id}.Arn}}/{prefix}*"}


def queue(logical_id: str) -> Intrinsic:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def topic(logical_id: str) -> Intrinsic:
    return {"Ref": logical_id}  # a topic's Ref is its ARN


def stream(table_id: str) -> Intrinsic:
    return {"Fn::GetAtt": [table_id, "StreamArn"]}


def event_bus(logical_id: str) -> Intrinsic:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def state_machine(logical_id: str) -> Intrinsic:
    return {"Ref": logical_id}  # a state machine's Ref is its ARN


def secret(logical_id: str) -> Intrinsic:
    return {"Ref": logical_id}  # a secret's Ref is its ARN


def user_pool(logical_id: str) -> Intrinsic:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def mail_identities() -> Intrinsic:
    """The account's SES identities in the region: the sender's address or domain (MAIL_FROM,
    verified outside the stack) and, in SES's sandbox, the verified recipients."""
    return {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"}


def log_streams(log_group_id: str) -> Intrinsic:
    """The streams of the function's own log group (created by the template, so no CreateLogGroup)."""
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}"
                       f":log-group:${{{log_group_id}}}:*"}


def _consume(queue_id: str) -> Grant:
    return Grant("PollItsQueue", ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
                 (queue(queue_id),))


_READ_STREAM = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")


def _publish_changes(table_id: str) -> tuple[Grant, ...]:
    """A stream's event source mapping polls with its function's role, and sends the description
    of a batch it gave up on to the on-failure queue with it too."""
    return (
        Grant("ReadItsStream", _READ_STREAM, (stream(table_id),)),
        # The mapping's poller lists streams too (Lambda's documented execution role); IAM has no
        # resource type for ListStreams, so it can only be granted on "*".
        Grant("ListStreams", ("dynamodb:ListStreams",), ("*",)),
        Grant("PublishEvents", ("events:PutEvents",), (event_bus("EventBus"),)),
        Grant("HandOverFailedBatches", ("sqs:SendMessage",), (queue("DomainEventsFailureQueue"),)),
    )


POLICIES: dict[str, tuple[Grant, ...]] = {
    # Routes: products, orders, image upload forms, imports; presigned rendition links.
    "api_handler": (
        Grant("Products", ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
              (table("ProductsTable"),)),
        Grant("ProductPages", ("dynamodb:Query",),
              (index("ProductsTable", "owner-index"), index("ProductsTable", "catalog-index"))),
        Grant("IdempotencyRecords", ("dynamodb:GetItem", "dynamodb:PutItem"), (table("IdempotencyTable"),)),
        Grant("Orders", ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
              (table("OrdersTable"),)),
        Grant("OrderPages", ("dynamodb:Query",),
              (index("OrdersTable", "buyer-index"), index("OrdersTable", "buyer-status-index"))),
        Grant("PendingImages", ("dynamodb:PutItem",), (table("ImagesTable"),)),
        Grant("ImportJobs", ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"),
              (table("ImportJobsTable"),)),
        Grant("UploadForms", ("s3:PutObject",),
              (objects("UploadsBucket", "uploads/"), objects("ImportsBucket", "imports/"))),
        Grant("RenditionLinks", ("s3:GetObject",), (objects("MediaBucket", "products/"),)),
        Grant("PlaceOrders", ("sqs:SendMessage",), (queue("OrdersQueue"),)),
        # A cancel of a confirmed order starts its compensation (`<order id>-cancel`).
        Grant("CancelConfirmedOrders", ("states:StartExecution",), (state_machine("OrderSagaStateMachine"),)),
        Grant("SalesReadModel", ("dynamodb:Query",), (table("SalesTable"),)),
    ),
    # Each table's changes as domain events on the bus (the stream is the outbox).
    "publish_product_events": _publish_changes("ProductsTable"),
    "publish_order_events": _publish_changes("OrdersTable"),
    # A batch the streams' mappings gave up on: read back from its stream, published or logged.
    "recover_lost_changes": (
        _consume("DomainEventsFailureQueue"),
        Grant("ReadStreams", _READ_STREAM, (stream("ProductsTable"), stream("OrdersTable"))),
        Grant("PublishEvents", ("events:PutEvents",), (event_bus("EventBus"),)),
    ),
    # One write per event: a fact's key put and its row added to in one transaction, or a name.
    "project_sales": (
        _consume("SalesEventsQueue"),
        # The transaction also checks that no rebuild is under way (ConditionCheckItem).
        Grant("SalesReadModel", ("dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
              (table("SalesTable"),)),
    ),
    "sales_dead_letter": (_consume("SalesEventsQueueDeadLetterQueue"),),
    # The seller's address from the user pool, the e-mail through SES, under a claim on the event.
    "email_low_stock": (
        _consume("LowStockQueue"),
        Grant("OnceClaims", ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
              (table("IdempotencyTable"),)),
        Grant("SellersAddress", ("cognito-idp:ListUsers",), (user_pool("UserPool"),)),
        Grant("SendMail", ("ses:SendEmail",), (mail_identities(),)),
    ),
    "low_stock_dead_letter": (_consume("LowStockQueueDeadLetterQueue"),),
    # Invoked by hand: empties the read model, then counts every order and names every product.
    "rebuild_sales": (
        Grant("ReadTheTables", ("dynamodb:Scan",), (table("OrdersTable"), table("ProductsTable"))),
        Grant("SalesReadModel", ("dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:PutItem",
                                 "dynamodb:UpdateItem", "dynamodb:DeleteItem"), (table("SalesTable"),)),
    ),
    # Reserves stock (stock and order in one transaction) or rejects each queued order, and
    # starts each reserved order's saga.
    "consume_orders": (
        _consume("OrdersQueue"),
        # One BatchGetItem reads a batch's stocks (a GetItem per product if it fails).
        Grant("Stock", ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
              (table("ProductsTable"),)),
        Grant("Orders", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("OrdersTable"),)),
        Grant("StartSagas", ("states:StartExecution",), (state_machine("OrderSagaStateMachine"),)),
    ),
    # An order message that failed every delivery: the order ends `failed`, or is finished.
    "orders_dead_letter": (
        _consume("OrdersQueueDeadLetterQueue"),
        Grant("Orders", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("OrdersTable"),)),
        Grant("StartSagas", ("states:StartExecution",), (state_machine("OrderSagaStateMachine"),)),
    ),
    # The saga's payment steps: authorize, capture, and release (void or refund).
    "order_saga_payment": (
        Grant("Orders", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("OrdersTable"),)),
        Grant("PaymentsApiKey", ("secretsmanager:GetSecretValue",), (secret("PaymentsApiKeySecret"),)),
    ),
    # The saga's order steps: confirm, and the compensation's restock and ending.
    "order_saga_order": (
        Grant("Orders", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("OrdersTable"),)),
        Grant("Restock", ("dynamodb:UpdateItem",), (table("ProductsTable"),)),
    ),
    # The saga's last step: the buyer's address from the user pool, the e-mail through SES.
    "order_saga_notify": (
        Grant("Orders", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("OrdersTable"),)),
        Grant("BuyersAddress", ("cognito-idp:ListUsers",), (user_pool("UserPool"),)),
        Grant("SendMail", ("ses:SendEmail",), (mail_identities(),)),
    ),
    # Reads an upload, writes renditions (deleting them again if the image vanished meanwhile).
    "process_images": (
        _consume("ImageUploadsQueue"),
        Grant("ImagesAndProducts", ("dynamodb:GetItem", "dynamodb:UpdateItem"),
              (table("ImagesTable"), table("ProductsTable"))),
        Grant("ReadUploads", ("s3:GetObject",), (objects("UploadsBucket", "uploads/"),)),
        Grant("TellMissingUploads", ("s3:ListBucket",), (bucket("UploadsBucket"),)),
        Grant("WriteRenditions", ("s3:PutObject", "s3:DeleteObject"), (objects("MediaBucket", "products/"),)),
    ),
    # Streams the CSV once, records the plan, publishes the chunks (or the job's failure).
    "dispatch_import": (
        _consume("ImportUploadsQueue"),
        Grant("ImportJobs", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("ImportJobsTable"),)),
        Grant("ReadImports", ("s3:GetObject",), (objects("ImportsBucket", "imports/"),)),
        Grant("TellMissingImports", ("s3:ListBucket",), (bucket("ImportsBucket"),)),
        Grant("PublishChunksAndOutcome", ("sns:Publish",),
              (topic("ImportChunksTopic"), topic("ImportCompletedTopic"))),
    ),
    # Writes one chunk's products and errors, counts it on the job, announces the last one.
    "import_chunk": (
        _consume("ImportChunksQueue"),
        Grant("ImportJobs", ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"),
              (table("ImportJobsTable"),)),
        Grant("WriteProducts", ("dynamodb:BatchWriteItem",), (table("ProductsTable"),)),
        Grant("ProductsAlreadyWritten", ("dynamodb:Query",), (index("ProductsTable", "owner-index"),)),
        Grant("ReadImports", ("s3:GetObject",), (objects("ImportsBucket", "imports/"),)),
        Grant("TellMissingImports", ("s3:ListBucket",), (bucket("ImportsBucket"),)),
        Grant("PublishOutcome", ("sns:Publish",), (topic("ImportCompletedTopic"),)),
    ),
    # An upload or a chunk that failed every delivery: its job fails and is announced.
    "dispatch_import_dead_letter": (
        _consume("ImportUploadsQueueDeadLetterQueue"),
        Grant("ImportJobs", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("ImportJobsTable"),)),
        Grant("PublishOutcome", ("sns:Publish",), (topic("ImportCompletedTopic"),)),
    ),
    "import_chunk_dead_letter": (
        _consume("ImportChunksQueueDeadLetterQueue"),
        Grant("ImportJobs", ("dynamodb:GetItem", "dynamodb:UpdateItem"), (table("ImportJobsTable"),)),
        Grant("PublishOutcome", ("sns:Publish",), (topic("ImportCompletedTopic"),)),
    ),
    # Fails stale pending images, deletes what nothing references and what has expired.
    "cleanup": (
        Grant("Images", ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                         "dynamodb:BatchWriteItem"), (table("ImagesTable"),)),
        Grant("ImageIndexes", ("dynamodb:Query",),
              (index("ImagesTable", "pending-index"), index("ImagesTable", "product-index"))),
        Grant("Products", ("dynamodb:BatchGetItem", "dynamodb:UpdateItem"), (table("ProductsTable"),)),
        Grant("Cursors", ("dynamodb:GetItem", "dynamodb:PutItem"), (table("CleanupStateTable"),)),
        Grant("ExpiredIdempotencyRecords", ("dynamodb:Query",), (index("IdempotencyTable", "expiry-index"),)),
        Grant("DeleteIdempotencyRecords", ("dynamodb:DeleteItem",), (table("IdempotencyTable"),)),
        Grant("ExpiredImportJobs", ("dynamodb:Query",), (index("ImportJobsTable", "expiry-index"),)),
        Grant("DeleteImportJobs", ("dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem"),
              (table("ImportJobsTable"),)),
        Grant("ListBuckets", ("s3:ListBucket",), (bucket("UploadsBucket"), bucket("MediaBucket"))),
        Grant("DeleteObjects", ("s3:DeleteObject",),
              (objects("UploadsBucket", "uploads/"), objects("MediaBucket", "products/"),
               objects("ImportsBucket", "imports/"))),
    ),
}

# X-Ray's write actions have no resource-level permissions.
_TRACING = Grant("Tracing", ("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ("*",))


def policy_document(function: str, log_group_id: str) -> dict[str, Any]:
    """The IAM policy document of ``function`` (a Chalice handler name), logging to ``log_group_id``.

    Raises KeyError for a function with no entry in POLICIES: a new handler must be given one.
    """
    grants = POLICIES[function] + (
        Grant("Logs", ("logs:CreateLogStream", "logs:PutLogEvents"), (log_streams(log_group_id),)),
        _TRACING,
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": g.sid, "Effect": "Allow", "Action": list(g.actions),
             "Resource": list(g.resources) if len(g.resources) > 1 else g.resources[0]}
            for g in grants
        ],
    }
