"""The event documents Lambda hands a function, built from what the local stand-in delivers.

One builder per shape: an SQS record, an SNS notification, an EventBridge event (a schedule's, or
one a rule matched), and the record an asynchronous invocation's on-failure destination receives.
Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone
from typing import Any

__all__ = ["eventbridge_event", "failure_record", "scheduled_event", "sns_event", "sqs_record"]

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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
