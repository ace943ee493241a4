"""X-Ray segment documents as the app's tracer writes them: an order's API request and its consumer.

Shaped as the local stack records them (2026-12-03): the X-Ray SDK's botocore subsegments carry
`table_name`, `queue_url` and `message_id` in `aws`, none for TransactWriteItems; the consumer's
function segment links to the subsegment that was current when the message was sent (the route),
and its record subsegment is annotated with the message's id.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["API_TRACE", "CONSUMER_TRACE", "T0", "QUEUE_URL", "raw", "api_order", "consumer"]

QUEUE_URL = "http://127.0.0.1:5000/123456789012/storefront-dev-OrdersQueue"

API_TRACE = "1-6b046abd-a8614d416902b7d7832278a8"
CONSUMER_TRACE = "1-6b046abf-2dc3c079315dd7b7b2772752"
T0 = 1_800_000_000.0


def raw(trace_id: str, *documents: dict[str, Any]) -> dict[str, Any]:
    """A BatchGetTraces element, documents as JSON strings as X-Ray returns them."""
    return {"Id": trace_id, "Segments": [{"Id": d["id"], "Document": json.dumps(d)} for d in documents]}


def api_order(order_id: str = "o-1", *, trace_id: str = API_TRACE, start: float = T0, cold: bool = False,
              fault: bool = False) -> dict[str, Any]:
    annotations: dict[str, Any] = {"order_id": order_id, "product_id": "p-1", "owner": "alice"}
    if cold:
        annotations["cold_start"] = True
    route: dict[str, Any] = {
        "id": "b000000000000001", "name": "POST /orders", "start_time": start + 0.001, "end_time": start + 0.100,
        "annotations": annotations,
        "subsegments": [
            {"id": "c000000000000002", "name": "sqs", "namespace": "aws", "start_time": start + 0.050,
             "end_time": start + 0.090, "aws": {"operation": "SendMessage", "queue_url": QUEUE_URL,
                                                "message_id": f"m-{order_id}"}},
            {"id": "c000000000000001", "name": "dynamodb", "namespace": "aws", "start_time": start + 0.010,
             "end_time": start + 0.040, "aws": {"operation": "PutItem", "table_name": "storefront-dev-OrdersTable"}},
        ]}
    if fault:
        route["fault"] = True
        route["cause"] = {"exceptions": [{"type": "RuntimeError", "message": "boom"}]}
    return raw(trace_id, {"id": "a000000000000001", "trace_id": trace_id, "name": "api_handler",
                          "origin": "AWS::Lambda::Function", "start_time": start, "end_time": start + 0.101,
                          "subsegments": [route]})


def consumer(order_id: str = "o-1", *, trace_id: str = CONSUMER_TRACE, links_to: str = API_TRACE,
             start: float = T0 + 1, duration: float = 0.050, error: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "e000000000000001", "name": "## consume_orders record",
                              "start_time": start + 0.002, "end_time": start + duration - 0.001,
                              "annotations": {"order_id": order_id, "outcome": "confirmed",
                                              "message_id": f"m-{order_id}"},
                              "subsegments": [{"id": "e000000000000002", "name": "dynamodb", "namespace": "aws",
                                               "start_time": start + 0.003, "end_time": start + 0.010,
                                               "aws": {"operation": "TransactWriteItems"}}]}
    if error:
        record["error"] = True
    return raw(trace_id, {
        "id": "d000000000000001", "trace_id": trace_id, "name": "storefront-dev-consume_orders",
        "origin": "AWS::Lambda::Function", "start_time": start, "end_time": start + duration,
        "links": [{"trace_id": links_to, "id": "b000000000000001"}],
        "subsegments": [{"id": "d000000000000002", "name": "## consume_orders", "start_time": start + 0.001,
                         "end_time": start + duration, "subsegments": [record]}]})
