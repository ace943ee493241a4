"""The trace viewer's endpoints, reading segments from moto's X-Ray API only."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.console import Console
from tests.support.moto import free_port
from tests.support.traces import api_order, consumer

pytestmark = pytest.mark.timeout(60)


def _trace_id() -> str:
    return f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


@pytest.fixture(scope="module")
def order(aws: Any) -> dict[str, str]:
    """An order's API request and its (linked) consumer invocation, put through PutTraceSegments."""
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    api_trace, consumer_trace, other_trace = _trace_id(), _trace_id(), _trace_id()
    now = time.time() - 30
    documents = [*api_order(order_id, trace_id=api_trace, start=now, cold=True)["Segments"],
                 *consumer(order_id, trace_id=consumer_trace, links_to=api_trace, start=now + 1)["Segments"],
                 *api_order("o-other", trace_id=other_trace, start=now + 2, fault=True)["Segments"]]
    answer = aws("xray").put_trace_segments(TraceSegmentDocuments=[d["Document"] for d in documents])
    assert answer["UnprocessedTraceSegments"] == []
    return {"order_id": order_id, "api": api_trace, "consumer": consumer_trace, "other": other_trace}


@pytest.fixture(scope="module")
def viewer(aws: Any) -> Iterator[str]:
    console = Console(host="127.0.0.1", port=free_port(), xray=aws("xray"), emulator=None,
                      memory_mb=lambda function: 1024 if function == "api_handler" else 256,
                      is_api=lambda function: function == "api_handler")
    console.start()
    try:
        yield f"http://127.0.0.1:{console.port}"
    finally:
        console.stop()


def test_the_list_filters_by_annotation_on_our_side(viewer, order):
    found = requests.get(f"{viewer}/api/traces", params={"filter": f'order_id = "{order["order_id"]}"'},
                         timeout=10).json()

    assert [t["id"] for t in found["traces"]] == [order["consumer"], order["api"]]
    assert found["traces"][1]["entry"] == "api_handler POST /orders"
    assert found["traces"][1]["annotations"]["order_id"] == order["order_id"]
    assert found["total"] >= 3


def test_the_list_filters_by_entry_point_and_by_error(viewer, order):
    by_entry = requests.get(f"{viewer}/api/traces", params={"entry": "consume_orders"}, timeout=10).json()
    failed = requests.get(f"{viewer}/api/traces", params={"errors": "1"}, timeout=10).json()

    assert order["consumer"] in [t["id"] for t in by_entry["traces"]]
    assert order["api"] not in [t["id"] for t in by_entry["traces"]]
    assert order["other"] in [t["id"] for t in failed["traces"]]
    assert {t["status"] for t in failed["traces"]} <= {"error", "fault"}


def test_a_filter_it_cannot_read_is_a_400_naming_it(viewer):
    answer = requests.get(f"{viewer}/api/traces", params={"filter": "order_id ~ 3"}, timeout=10)

    assert answer.status_code == 400
    assert "order_id ~ 3" in answer.json()["Message"]


def test_one_trace_comes_with_its_linked_and_related_traces(viewer, order):
    api = requests.get(f"{viewer}/api/traces/{order['api']}", timeout=10).json()
    consumed = requests.get(f"{viewer}/api/traces/{order['consumer']}", timeout=10).json()

    assert [s["name"] for s in api["spans"]] == ["api_handler", "POST /orders", "dynamodb PutItem", "sqs SendMessage"]
    assert (api["upstream"], api["downstream"]) == ([], [order["consumer"]])
    assert consumed["upstream"] == [order["api"]]
    assert api["related"][f'order_id = "{order["order_id"]}"'] == [order["consumer"]]


def test_the_waterfall_page_shows_the_request_and_the_consumer_with_errors_marked(viewer, order):
    page = requests.get(f"{viewer}/trace/{order['consumer']}", timeout=10)
    failed = requests.get(f"{viewer}/trace/{order['other']}", timeout=10)

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "data-segment='api_handler'" in page.text
    assert "data-segment='storefront-dev-consume_orders'" in page.text
    assert f"/?filter=order_id+%3D+%22{order['order_id']}%22" in page.text  # related traces, one click away
    assert "class='span kind-subsegment status-fault'" in failed.text and "RuntimeError: boom" in failed.text


def test_an_unknown_trace_is_a_404(viewer):
    assert requests.get(f"{viewer}/api/traces/1-00000000-000000000000000000000000", timeout=10).status_code == 404
    assert requests.get(f"{viewer}/trace/1-00000000-000000000000000000000000", timeout=10).status_code == 404


def test_cost_per_function_is_served_and_shown_on_the_list_page(viewer, order):
    costs = {c["function"]: c for c in requests.get(f"{viewer}/api/costs", timeout=10).json()["functions"]}
    page = requests.get(viewer, params={"filter": f'order_id = "{order["order_id"]}"'}, timeout=10).text

    api = costs["api_handler"]
    assert (api["memory_mb"], api["api"], api["cold_starts"]) == (1024, True, 1)
    assert api["invocations"] >= 2 and api["cost_per_million_usd"] > 3.70
    assert costs["storefront-dev-consume_orders"]["memory_mb"] == 256
    assert "<table id=costs>" in page and "data-function='storefront-dev-consume_orders'" in page
    assert order["api"] in page and order["other"] not in page


def test_without_the_emulator_it_serves_traces_only(viewer):
    assert requests.get(f"{viewer}/api/schedules", timeout=10).status_code == 404
    assert json.loads(requests.post(f"{viewer}/api/schedules/cleanup/fire", timeout=10).text)["Code"] == "NotFoundError"


def test_the_page_says_a_filter_is_ignored_only_when_it_lists_the_traces_unfiltered(viewer, order):
    unreadable = requests.get(viewer, params={"filter": f"order_id = {order['order_id']}"}, timeout=10).text
    unmatched = requests.get(viewer, params={"filter": 'order_id = "o-nobody"'}, timeout=10).text

    assert "filter ignored" in unreadable
    assert order["api"] in unreadable and order["other"] in unreadable
    assert "filter ignored" not in unmatched
    assert order["api"] not in unmatched


def test_the_map_is_served_with_the_order_path_and_its_counts(viewer, order):
    drawn = requests.get(f"{viewer}/api/map", params={"filter": f'order_id = "{order["order_id"]}"'},
                         timeout=10).json()

    names = {n["id"]: n["name"] for n in drawn["nodes"]}
    edges = {(names[e["source"]], names[e["target"]]): e for e in drawn["edges"]}
    assert edges[("api_handler", "storefront-dev-OrdersQueue")]["count"] == 1
    waited = edges[("storefront-dev-OrdersQueue", "storefront-dev-consume_orders")]
    assert (waited["kind"], waited["count"]) == ("message", 1)
    assert waited["p50_ms"] == pytest.approx(910.0, abs=0.1)  # sent at +90 ms, consumed at +1 s
    assert drawn["traces"] == 2 and [e["entry"] for e in drawn["entries"]][0] in (
        "api_handler POST /orders", "storefront-dev-consume_orders ## consume_orders")


def test_the_map_page_links_nodes_to_their_traces_and_edges_to_their_slowest_calls(viewer, order):
    page = requests.get(f"{viewer}/map", timeout=10)

    assert page.status_code == 200 and "<svg id=map" in page.text
    assert "data-name='storefront-dev-OrdersQueue'" in page.text and "href='/?node=queue%3Astorefront-dev-OrdersQueue" in page.text
    edge = requests.get(f"{viewer}/map/edge", params={"from": "api:api_handler", "to": "client:clients"}, timeout=10)
    assert edge.status_code == 404
    slowest = requests.get(f"{viewer}/map/edge", params={"from": "client:clients", "to": "api:api_handler"},
                           timeout=10).text
    assert slowest.index(order["other"]) >= 0 and "id=slowest" in slowest
    touching = requests.get(f"{viewer}/api/traces", params={"node": "function:storefront-dev-consume_orders"},
                            timeout=10).json()["traces"]
    assert [t["id"] for t in touching] == [order["consumer"]]


def test_the_trace_page_shows_the_queue_wait_the_cold_start_and_resource_names(viewer, order):
    consumed = requests.get(f"{viewer}/api/traces/{order['consumer']}", timeout=10).json()
    page = requests.get(f"{viewer}/trace/{order['api']}", timeout=10).text

    [waited] = consumed["queues"]
    assert (waited["name"], waited["duration_ms"]) == ("waited in storefront-dev-OrdersQueue", 910.0)
    assert "class='span kind-queue status-ok'" in page
    assert "data-resource='storefront-dev-OrdersTable'" in page and "data-resource='storefront-dev-OrdersQueue'" in page


def test_the_list_groups_entry_points_and_folds_polling(aws, viewer, order):
    polls = []
    for i in range(3):
        trace_id = _trace_id()
        document = json.loads(api_order("o-polled", trace_id=trace_id, start=time.time() - 20 + i)["Segments"][0]["Document"])
        document["subsegments"][0]["name"] = "GET /orders/{order_id}"
        polls.append(json.dumps(document))
    aws("xray").put_trace_segments(TraceSegmentDocuments=polls)

    grouped = requests.get(viewer, params={"group": "1"}, timeout=10).text
    every = requests.get(f"{viewer}/api/traces", params={"filter": 'order_id = "o-polled"'}, timeout=10).json()
    folded = requests.get(f"{viewer}/api/traces", params={"filter": 'order_id = "o-polled"', "polling": "hide"},
                          timeout=10).json()

    assert "<table id=entries>" in grouped and "data-entry='api_handler POST /orders'" in grouped
    assert "<table id=traces>" not in grouped
    assert len(every["traces"]) == 3
    assert [(t["entry"], t["polls"]) for t in folded["traces"]] == [("api_handler GET /orders/{order_id}", 3)]


def test_the_stack_s_console_reads_its_x_ray_in_process_as_the_api_answers(aws, order):
    # The stack's console reads moto's backend in its own process (devstack.trace_reader.StackXRay):
    # the same traces, spans and links as through the X-Ray API.
    from moto.core import DEFAULT_ACCOUNT_ID

    from devstack.trace_reader import StackXRay, TraceReader

    region = aws("xray").meta.region_name
    over_http = TraceReader(aws("xray")).recent(minutes=5)
    in_process = TraceReader(StackXRay(DEFAULT_ACCOUNT_ID, region)).recent(minutes=5)

    assert {order["api"], order["consumer"], order["other"]} <= {t.id for t in in_process}
    assert in_process == over_http
