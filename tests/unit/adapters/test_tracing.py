"""The X-Ray tracer inside the segment Lambda opened: a subsegment per invocation, cold starts,
errors, the header for the next hop; and outside any trace, nothing recorded and nothing broken."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.context import Context
from aws_xray_sdk.core.lambda_launcher import LambdaContext

from chalicelib.adapters.tracing import XRayTracer, parse_trace_header

ROOT = "1-6b046abd-000000000000000000000001"
FUNCTION_SEGMENT = "00000000000000f1"


class CapturingEmitter:
    """Keeps the documents the SDK would send to the daemon."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.documents.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address: str | None) -> None:
        pass

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000


def _recorder_as(context: Any, emitter: CapturingEmitter) -> Iterator[None]:
    previous = (xray_recorder.context, xray_recorder.emitter, xray_recorder.streaming_threshold)
    # What the SDK sets up itself when it finds LAMBDA_TASK_ROOT (streaming every subsegment).
    xray_recorder.configure(context=context, emitter=emitter, streaming_threshold=0)
    try:
        yield
    finally:
        xray_recorder.configure(context=previous[0], emitter=previous[1], streaming_threshold=previous[2])


@pytest.fixture
def emitter() -> CapturingEmitter:
    return CapturingEmitter()


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch, emitter: CapturingEmitter) -> Iterator[None]:
    """An invocation whose segment Lambda opened and handed over in _X_AMZN_TRACE_ID."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={ROOT};Parent={FUNCTION_SEGMENT};Sampled=1")
    yield from _recorder_as(LambdaContext(), emitter)


def test_an_invocation_is_a_subsegment_of_the_segment_lambda_opened(in_lambda, emitter):
    tracer = XRayTracer(service="storefront")
    with tracer.invocation("GET /health") as span:
        assert span.trace_id == ROOT

    [invocation] = emitter.documents
    assert (invocation["type"], invocation["name"]) == ("subsegment", "GET /health")
    assert (invocation["trace_id"], invocation["parent_id"]) == (ROOT, FUNCTION_SEGMENT)


def test_only_a_containers_first_invocation_is_a_cold_start(in_lambda, emitter):
    tracer = XRayTracer(service="storefront")  # made once per container
    for name in ("## first", "## second"):
        with tracer.invocation(name):
            pass

    marks = [d.get("annotations", {}).get("cold_start") for d in emitter.documents]
    assert marks == [True, None]


def test_an_exception_marks_the_invocation_a_fault_with_its_cause(in_lambda, emitter):
    tracer = XRayTracer(service="storefront")
    with pytest.raises(RuntimeError):
        with tracer.invocation("## cleanup"):
            raise RuntimeError("disk on fire")

    [invocation] = emitter.documents
    assert invocation["fault"] is True
    assert invocation["cause"]["exceptions"][0]["message"] == "disk on fire"


def test_the_header_for_the_next_hop_names_the_current_subsegment_in_lambdas_trace(in_lambda, emitter):
    tracer = XRayTracer(service="storefront")
    with tracer.invocation("POST /orders"), tracer.subsegment("send"):
        header = parse_trace_header(tracer.propagation_header())

    send = next(d for d in emitter.documents if d["name"] == "send")
    assert header == {"Root": ROOT, "Parent": send["id"], "Sampled": "1"}


def test_annotations_land_on_the_invocation(in_lambda, emitter):
    tracer = XRayTracer(service="storefront")
    with tracer.invocation("POST /orders"):
        tracer.annotate(order_id="o-1", owner=None)

    assert emitter.documents[0]["annotations"] == {"cold_start": True, "order_id": "o-1"}


def test_outside_any_trace_nothing_is_recorded_and_nothing_fails(emitter):
    tracer = XRayTracer(service="storefront")
    for _ in _recorder_as(Context(context_missing="IGNORE_ERROR"), emitter):
        with tracer.invocation("GET /health") as span:
            span.annotate(order_id="o-1")
            span.set_status(200)
            with tracer.subsegment("work"):
                tracer.annotate(step="one")
        assert span.trace_id is None
        assert tracer.propagation_header() is None

    assert emitter.documents == []


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.mark.parametrize(("service", "operation", "params", "response", "named"), [
    ("dynamodb", "transact_write_items",
     {"TransactItems": [{"Put": {"TableName": "Orders", "Item": {"pk": {"S": "o"}}}},
                        {"Update": {"TableName": "Products", "Key": {"pk": {"S": "p"}}, "UpdateExpression": "SET a = :a",
                                    "ExpressionAttributeValues": {":a": {"N": "1"}}}},
                        {"ConditionCheck": {"TableName": "Orders", "Key": {"pk": {"S": "q"}},
                                            "ConditionExpression": "attribute_exists(pk)"}}]},
     {}, {"table_names": ["Orders", "Products"]}),
    ("events", "put_events",
     {"Entries": [{"EventBusName": "storefront-dev-events", "Source": "s", "DetailType": "d", "Detail": "{}"}] * 2},
     {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}, {"EventId": "2"}]},
     {"event_bus_name": "storefront-dev-events"}),
    ("stepfunctions", "start_execution",
     {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga", "input": "{}"},
     {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:OrderSaga:x", "startDate": "2026-12-03"},
     {"state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"}),
    ("secretsmanager", "get_secret_value", {"SecretId": "storefront-dev-payments"},
     {"SecretString": "sk_test"}, {"secret_id": "storefront-dev-payments"}),
    ("cognito-idp", "admin_get_user", {"UserPoolId": "us-east-1_abc", "Username": "seller-1"},
     {"Username": "seller-1"}, {"user_pool_id": "us-east-1_abc"}),
    ("sesv2", "send_email",
     {"FromEmailAddress": "Shop (dev) <orders@shop.example>", "Destination": {"ToAddresses": ["a@b.example"]},
      "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}}},
     {"MessageId": "m-1"}, {"email_identity": "orders@shop.example"}),
])
def test_every_aws_call_names_its_resource_even_inside_a_list_of_the_request(
        in_lambda, emitter, service, operation, params, response, named):
    # The SDK's whitelist names none of these (a table inside TransactItems, a bus inside Entries,
    # no Step Functions operation at all): the service map would draw one unnamed node per service.
    from botocore.stub import Stubber

    tracer = XRayTracer(service="storefront")
    client = _client(service)
    with Stubber(client) as stub, tracer.invocation("## handler"):
        stub.add_response(operation, response, params)
        getattr(client, operation)(**params)

    [call] = [d for d in emitter.documents if d.get("namespace") == "aws"]
    assert {k: call["aws"][k] for k in named} == named
    assert call["aws"]["operation"] == "".join(part.title() for part in operation.split("_"))
    assert "Data" not in json.dumps(call)  # names only: nothing else of the request is recorded


def test_a_call_the_sdk_already_names_keeps_its_name(in_lambda, emitter):
    from botocore.stub import Stubber

    tracer = XRayTracer(service="storefront")
    client = _client("dynamodb")
    with Stubber(client) as stub, tracer.invocation("## handler"):
        stub.add_response("get_item", {}, {"TableName": "Orders", "Key": {"pk": {"S": "o"}}})
        client.get_item(TableName="Orders", Key={"pk": {"S": "o"}})

    [call] = [d for d in emitter.documents if d.get("namespace") == "aws"]
    assert call["aws"]["table_name"] == "Orders" and "table_names" not in call["aws"]
