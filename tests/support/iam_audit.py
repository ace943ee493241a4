"""Every AWS call a Lambda handler makes in the tests, checked against its role's policy.

While ``recording()`` is active, each botocore call made inside a Chalice handler (the API's or
an event function's) is kept with the handler's name; ``violations`` then asks, for each call,
whether infra/policies.py grants that function the IAM action on that resource, with the ARNs
of the provisioned local stack. moto enforces no IAM: this is what catches a policy that the
code has outgrown (a new BatchGetItem, a new bucket) before AWS does.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from fnmatch import fnmatchcase
from typing import Any

import botocore.client
import chalice.app

from devstack.provision import Provisioned
from devstack.template import evaluate
from infra.policies import policy_document

__all__ = ["Call", "iam_requests", "recording", "violations"]

_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("lambda_function", default=None)


@dataclass(frozen=True)
class Call:
    function: str
    service: str
    operation: str
    params: dict[str, Any]


@contextlib.contextmanager
def recording() -> Iterator[list[Call]]:
    """Record the calls handlers make until the block ends (any thread)."""
    calls: list[Call] = []
    lock = threading.Lock()
    make_api_call = botocore.client.BaseClient._make_api_call
    app_call = chalice.app.Chalice.__call__
    event_call = chalice.app.EventSourceHandler.__call__

    def within(name: str, call: Any, *args: Any) -> Any:
        token = _FUNCTION.set(name)
        try:
            return call(*args)
        finally:
            _FUNCTION.reset(token)

    def recorded_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        function = _FUNCTION.get()
        if function is not None:
            with lock:
                calls.append(Call(function, client.meta.service_model.service_name, operation, dict(params)))
        return make_api_call(client, operation, params)

    patches = {
        (botocore.client.BaseClient, "_make_api_call"): recorded_api_call,
        (chalice.app.Chalice, "__call__"): lambda self, *a: within("api_handler", app_call, self, *a),
        (chalice.app.EventSourceHandler, "__call__"): lambda self, *a: within(_function_name(self), event_call,
                                                                              self, *a),
    }
    for (owner, name), replacement in patches.items():
        setattr(owner, name, replacement)
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        chalice.app.Chalice.__call__ = app_call  # type: ignore[method-assign]
        chalice.app.EventSourceHandler.__call__ = event_call  # type: ignore[method-assign]


def _function_name(handler: Any) -> str:
    """The Lambda function an event handler is: its Python function's name, which Chalice also
    gives the function (an @lambda_function's handler wraps it in a PureLambdaWrapper first)."""
    func = getattr(handler.func, "_original_func", handler.func)
    return str(func.__name__)


def _table(region: str, account: str, name: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


_DYNAMODB_ITEM = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem", "BatchWriteItem"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
             "Get": "GetItem"}


def iam_requests(call: Call, *, region: str, account: str) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs AWS would authorise for ``call``.

    Raises KeyError for an operation this audit does not know yet (teach it, do not skip it).
    """
    p, op = call.params, call.operation
    if call.service == "dynamodb":
        if op in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{op}", _table(region, account, t)) for t in p["RequestItems"]]
        if op in ("TransactWriteItems", "TransactGetItems"):
            return [(f"dynamodb:{_TRANSACT[kind]}", _table(region, account, body["TableName"]))
                    for item in p["TransactItems"] for kind, body in item.items()]
        if op in _DYNAMODB_ITEM or op in ("Query", "Scan"):
            arn = _table(region, account, p["TableName"])
            return [(f"dynamodb:{op}", f"{arn}/index/{p['IndexName']}" if p.get("IndexName") else arn)]
    if call.service == "s3":
        objects = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
                   "DeleteObject": "s3:DeleteObject"}
        if op in objects:
            return [(objects[op], f"arn:aws:s3:::{p['Bucket']}/{p['Key']}")]
        if op == "DeleteObjects":
            return [("s3:DeleteObject", f"arn:aws:s3:::{p['Bucket']}/{o['Key']}") for o in p["Delete"]["Objects"]]
        if op in ("ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", f"arn:aws:s3:::{p['Bucket']}")]
    if call.service == "sqs" and op in ("SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage",
                                        "GetQueueAttributes"):
        name = p["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return [(f"sqs:{op.replace('Batch', '')}", f"arn:aws:sqs:{region}:{account}:{name}")]
    if call.service == "sns" and op in ("Publish", "PublishBatch"):
        return [("sns:Publish", p["TopicArn"])]
    if call.service == "sesv2" and op == "SendEmail":
        # SES authorises sending on the sender's identity (its address; a role may grant its
        # domain's identity instead, which this audit does not model).
        return [("ses:SendEmail", f"arn:aws:ses:{region}:{account}:identity/{parseaddr(p['FromEmailAddress'])[1]}")]
    if call.service == "cognito-idp" and op == "ListUsers":
        return [("cognito-idp:ListUsers", f"arn:aws:cognito-idp:{region}:{account}:userpool/{p['UserPoolId']}")]
    if call.service == "stepfunctions" and op == "StartExecution":
        return [("states:StartExecution", p["stateMachineArn"])]
    if call.service == "secretsmanager" and op == "GetSecretValue":
        # IAM authorises it on the secret's ARN; a bare name (which the adapters never pass) is
        # given a prefix no grant on an ARN matches, so it shows up rather than passing.
        secret_id = p["SecretId"]
        arn = secret_id if secret_id.startswith("arn:") else \
            f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"
        return [("secretsmanager:GetSecretValue", arn)]
    if call.service == "events" and op == "PutEvents":
        buses = {entry.get("EventBusName") or "default" for entry in p["Entries"]}
        return [("events:PutEvents", bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{bus}")
                for bus in sorted(buses)]
    if call.service == "dynamodbstreams" and op in ("DescribeStream", "GetShardIterator"):
        return [(f"dynamodb:{op}", p["StreamArn"])]
    if call.service == "dynamodbstreams" and op == "GetRecords":
        # IAM authorises it on the stream the iterator belongs to. AWS's iterators are opaque;
        # moto's begin with the stream's ARN ("<stream arn>|1|<id>"), which is what this reads.
        return [("dynamodb:GetRecords", p["ShardIterator"].split("|", 1)[0])]
    raise KeyError(f"{call.service}:{op} is not known to the IAM audit")


def _granted(function: str, provisioned: Provisioned) -> list[tuple[list[str], list[str]]]:
    """(actions, resource patterns) of the function's statements, with the stack's real ARNs."""
    pseudo = provisioned.stack.pseudo_parameters()
    granted = []
    for statement in policy_document(function, "UnusedLogGroup")["Statement"]:
        if statement["Sid"] in ("Logs", "Tracing"):
            continue  # Lambda's own, never a botocore call of the handler
        resources = evaluate(statement["Resource"], pseudo=pseudo, ref=lambda i: provisioned[i].ref,
                             get_att=lambda i, a: provisioned[i].attributes[a], where=function)
        granted.append((statement["Action"], resources if isinstance(resources, list) else [resources]))
    return granted


def violations(calls: list[Call], provisioned: Provisioned) -> list[str]:
    """What the functions did that their policies would refuse, one line each (none: all allowed)."""
    region, account = provisioned.stack.region, provisioned.stack.account_id
    found: set[str] = set()
    granted = {f: _granted(f, provisioned) for f in {c.function for c in calls}}
    for call in calls:
        try:
            requests = iam_requests(call, region=region, account=account)
        except KeyError as unknown:
            found.add(f"{call.function}: {unknown.args[0]}")
            continue
        for action, arn in requests:
            if not any(action in actions and any(fnmatchcase(arn, r) for r in resources)
                       for actions, resources in granted[call.function]):
                found.add(f"{call.function}: {action} on {arn} ({call.service}:{call.operation})")
    return sorted(found)
