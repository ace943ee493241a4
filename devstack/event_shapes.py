"""The event documents Lambda hands a function, built from what the local stand-in delivers.

One builder per shape: an SQS record, an SNS notification, an EventBridge event (a schedule's, or
one a rule matched), a DynamoDB stream record, and the records on-failure destinations receive (an
asynchronous invocation's, a stream batch's). Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone
from typing import Any

__all__ = ["dynamodb_stream_record", "eventbridge_event", "failure_record", "scheduled_event", "sns_event",
           "sqs_record", "stream_failure_record"]

# The system attributes Lambda copies into a record's `attributes`.
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)
# Keys of an EventBridge event as a target receives it; moto adds "ingestion-time" of its own.
_EVENT_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources",
               "detail")


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a message as ReceiveMessage returns it."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attributes[k] for k in _RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        {
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
    )
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = _b64(value["BinaryValue"])
    shaped["stringListValues"] = list(value.get("StringListValues", []))
    shaped["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    shaped["dataType"] = value["DataType"]
    return shaped


def sns_event(envelope: dict[str, Any], subscription_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SNS event for one SNS notification as SNS delivers it to a queue."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope["Type"],
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope["Timestamp"],
                    "SignatureVersion": envelope["SignatureVersion"],
                    "Signature": envelope["Signature"],
                    "SigningCertUrl": envelope["SigningCertURL"],
                    "UnsubscribeUrl": (
                        f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                        f"&SubscriptionArn={subscription_arn}"
                    ),
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }


def eventbridge_event(received: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The event a rule's target gets, from what moto put in the target queue."""
    # moto's default target input drops "account"; EventBridge always sends it.
    received = {**received}
    received.setdefault("account", account_id)
    return {key: received[key] for key in _EVENT_KEYS if key in received}


def scheduled_event(rule_arn: str, at: datetime, *, region: str, account_id: str) -> dict[str, Any]:
    """EventBridge's "Scheduled Event" for the rule `rule_arn` firing at `at`."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def failure_record(event: dict[str, Any], *, function_arn: str, request_id: str, attempts: int,
                   error: dict[str, Any]) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination once retries are exhausted.

    `error` is the invocation's error response (errorMessage, errorType, stackTrace).
    """
    return {
        "version": "1.0",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": error,
    }


# The keys of a record's "dynamodb" part, in the order Lambda's event lists them.
_STREAM_RECORD_KEYS = ("ApproximateCreationDateTime", "Keys", "NewImage", "OldImage", "SequenceNumber",
                       "SizeBytes", "StreamViewType")


def dynamodb_stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's DynamoDB stream event, from a record as boto3's GetRecords returns it.

    What boto3 parsed goes back to the wire's shape (a creation time in epoch seconds, binary
    values in base64); moto's records say us-east-1 whatever the region, and carry no
    eventSourceARN, which Lambda adds.
    """
    stream = record["dynamodb"]
    shaped: dict[str, Any] = {}
    for key in _STREAM_RECORD_KEYS:
        if key not in stream:
            continue
        value = stream[key]
        if key == "ApproximateCreationDateTime" and isinstance(value, datetime):
            # Lambda gives whole seconds ("ApproximateCreationDateTime": 1479499740.0 in Python).
            value = float(int(value.timestamp()))
        elif key in ("Keys", "NewImage", "OldImage"):
            value = {name: _wire_attribute(v) for name, v in value.items()}
        shaped[key] = value
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": shaped,
        "eventSourceARN": stream_arn,
    }


def _wire_attribute(value: Any) -> Any:
    """A DynamoDB attribute value as JSON carries it: boto3 decodes B and BS into bytes."""
    if isinstance(value, bytes):
        return _b64(value)
    if isinstance(value, dict):
        return {k: _wire_attribute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire_attribute(v) for v in value]
    return value


def stream_failure_record(records: list[dict[str, Any]], *, shard_id: str, stream_arn: str, function_arn: str,
                          request_id: str, condition: str, invoke_count: int,
                          function_error: bool) -> dict[str, Any]:
    """What Lambda sends a stream mapping's on-failure destination for records it gives up on.

    `records` are the discarded records as the function got them (stream order); `condition` is
    RetryAttemptsExhausted or RecordAgeExceeded; `function_error` says whether the last
    invocation failed (rather than answering a partial batch failure).
    """
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = "Unhandled"
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso_millis(datetime.now(timezone.utc)),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso_seconds(first.get("ApproximateCreationDateTime")),
            "approximateArrivalOfLastRecord": _iso_seconds(last.get("ApproximateCreationDateTime")),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def _iso_millis(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_seconds(epoch_seconds: Any) -> str:
    at = datetime.fromtimestamp(float(epoch_seconds or 0), timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
