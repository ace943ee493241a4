"""Trace assembly from X-Ray documents: the waterfall, filters, following an action, cost per function."""

from __future__ import annotations

import json

import pytest

from devstack.trace_text import cost_table, timeline, trace_table
from devstack.traces import (
    Clause, FilterError, assemble, function_costs, handler_name, linked, parse_filter, percentile, related,
    resource_name, select,
)
from tests.support.traces import API_TRACE, CONSUMER_TRACE, T0, api_order, consumer, raw


def test_a_trace_becomes_a_waterfall_of_every_segment_and_subsegment_in_time_order():
    trace = assemble(api_order())

    assert [(s.depth, s.name) for s in trace.spans] == [
        (0, "api_handler"), (1, "POST /orders"), (2, "dynamodb PutItem"), (2, "sqs SendMessage")]
    assert trace.entry == "api_handler POST /orders"
    assert trace.duration_ms == 101.0
    assert [s.kind for s in trace.spans] == ["segment", "subsegment", "aws", "aws"]
    assert trace.spans[3].duration_ms == 40.0


def test_a_segment_continuing_another_comes_under_its_parent_whatever_the_document_order():
    child = {"id": "f000000000000001", "trace_id": API_TRACE, "name": "storefront-dev-worker",
             "parent_id": "c000000000000002", "start_time": T0 + 0.060, "end_time": T0 + 0.080}
    api = api_order()
    trace = assemble({"Id": API_TRACE, "Segments": [{"Id": "f", "Document": json.dumps(child)}, *api["Segments"]]})

    assert [s.name for s in trace.spans if s.depth == 0] == ["api_handler", "storefront-dev-worker"]
    assert trace.entry == "api_handler POST /orders"


def test_on_aws_the_entry_point_is_the_functions_handler_not_lambdas_service_segment():
    service = {"id": "9000000000000001", "trace_id": API_TRACE, "name": "storefront-dev", "origin": "AWS::Lambda",
               "start_time": T0 - 0.010, "end_time": T0 + 0.200}
    api = api_order()
    api["Segments"][0]["Document"] = json.dumps({**json.loads(api["Segments"][0]["Document"]),
                                                 "name": "storefront-dev", "parent_id": "9000000000000001"})
    trace = assemble({"Id": API_TRACE, "Segments": [{"Id": "9", "Document": json.dumps(service)},
                                                    *api["Segments"]]})

    assert trace.entry == "storefront-dev POST /orders"
    assert [(s.depth, s.segment) for s in trace.spans][:2] == [(0, "storefront-dev"), (0, "storefront-dev")]
    assert len(trace.invocations) == 1


def test_subsegments_the_sdk_streamed_apart_are_put_back_under_their_parent():
    api = api_order()
    streamed = {"id": "c000000000000009", "trace_id": API_TRACE, "type": "subsegment", "name": "sns",
                "namespace": "aws", "parent_id": "b000000000000001", "start_time": T0 + 0.091,
                "end_time": T0 + 0.095, "aws": {"operation": "Publish"}}
    trace = assemble({"Id": API_TRACE, "Segments": [{"Id": "c9", "Document": json.dumps(streamed)},
                                                    *api["Segments"]]})

    assert [(s.depth, s.name) for s in trace.spans][-1] == (2, "sns Publish")
    assert [s.name for s in trace.spans if s.depth == 0] == ["api_handler"]


def test_faults_are_the_trace_status_and_carry_their_cause():
    trace = assemble(api_order(fault=True))

    assert trace.status == "fault"
    route = next(s for s in trace.spans if s.name == "POST /orders")
    assert (route.status, route.cause) == ("fault", "RuntimeError: boom")
    assert assemble(consumer(error=True)).status == "error"
    assert assemble(api_order()).status == "ok"


def test_annotations_of_every_subsegment_are_the_traces_and_links_name_the_producer():
    trace = assemble(consumer("o-9"))

    assert trace.annotations["order_id"] == ("o-9",)
    assert trace.annotations["outcome"] == ("confirmed",)
    assert trace.links == (API_TRACE,)


def test_a_filter_reads_xray_style_clauses():
    assert parse_filter('order_id = "o-1"') == [Clause("order_id", "=", "o-1")]
    assert parse_filter('annotation.owner = "a b" AND chunk = 2 and cold_start = true') == [
        Clause("owner", "=", "a b"), Clause("chunk", "=", 2), Clause("cold_start", "=", True)]
    assert parse_filter('outcome != "rejected"') == [Clause("outcome", "!=", "rejected")]
    assert parse_filter("  ") == []
    with pytest.raises(FilterError, match="order_id ~ 1"):
        parse_filter("order_id ~ 1")


def test_select_keeps_the_traces_that_match_newest_first():
    api = assemble(api_order("o-1"))
    mine = assemble(consumer("o-1"))
    other = assemble(consumer("o-2", trace_id="1-00000000-000000000000000000000002", start=T0 + 5, error=True))
    traces = [api, other, mine]

    assert [t.id for t in select(traces, parse_filter('order_id = "o-1"'))] == [mine.id, api.id]
    assert [t.id for t in select(traces, entry="consume_orders")] == [other.id, mine.id]
    assert [t.id for t in select(traces, errors_only=True)] == [other.id]
    assert [t.id for t in select(traces, parse_filter('order_id != "o-1"'))] == [other.id]


def test_one_order_is_followed_from_the_request_to_the_consumer_by_its_link_and_its_annotation():
    api = assemble(api_order("o-1"))
    mine = assemble(consumer("o-1"))
    unrelated = assemble(api_order("o-7", trace_id="1-00000000-000000000000000000000003", start=T0 + 9))
    traces = [api, mine, unrelated]

    assert linked(mine, traces) == ([api], [])
    assert linked(api, traces) == ([], [mine])
    assert {label: [t.id for t in found] for label, found in related(api, traces).items()} == {
        'order_id = "o-1"': [mine.id],
        'product_id = "p-1"': [unrelated.id],
        'owner = "alice"': [unrelated.id]}


def test_cold_starts_are_counted_from_our_annotation_and_from_lambdas_initialization_subsegment():
    ours = assemble(api_order(cold=True))
    lambdas = assemble(raw("1-00000000-000000000000000000000004", {
        "id": "a000000000000009", "trace_id": "1-00000000-000000000000000000000004", "name": "storefront-dev",
        "origin": "AWS::Lambda::Function", "start_time": T0, "end_time": T0 + 1.5,
        "subsegments": [
            {"id": "a00000000000000a", "name": "Initialization", "start_time": T0, "end_time": T0 + 1.0},
            {"id": "a00000000000000b", "name": "Invocation", "start_time": T0 + 1.0, "end_time": T0 + 1.2},
            {"id": "a00000000000000c", "name": "Overhead", "start_time": T0 + 1.2, "end_time": T0 + 1.5}]}))
    warm = assemble(api_order(start=T0 + 3))

    assert [i.cold for t in (ours, lambdas, warm) for i in t.invocations] == [True, True, False]
    # On AWS the billed handler time is the Invocation subsegment, not Initialization or Overhead.
    assert lambdas.invocations[0].duration_ms == pytest.approx(200.0)
    assert lambdas.entry == "storefront-dev"


def test_cost_per_function_uses_its_memory_and_adds_api_gateway_for_the_api():
    traces = [assemble(api_order(f"o-{i}", trace_id=f"1-00000000-{i:024d}", start=T0 + i, cold=i == 0))
              for i in range(4)]
    traces += [assemble(consumer(f"o-{i}", trace_id=f"1-00000001-{i:024d}", start=T0 + i, duration=0.0504,
                                 error=i == 1)) for i in range(2)]

    costs = {c.function: c for c in function_costs(
        traces, memory_mb=lambda f: 1024 if f == "api_handler" else 128, is_api=lambda f: f == "api_handler")}

    api = costs["api_handler"]
    assert (api.invocations, api.cold_starts, api.errors, api.memory_mb) == (4, 1, 0, 1024)
    assert api.p50_ms == pytest.approx(101.0) and api.p99_ms == pytest.approx(101.0)
    # 102 ms billed (101.0000x rounds up) at 1 GB: 0.102 GB-s x $0.0000133334 (arm64) + $0.20/M + $3.50/M.
    assert api.cost_per_million == pytest.approx(0.20 + 0.102 * 13.3334 + 3.50, abs=0.01)
    orders = costs["storefront-dev-consume_orders"]
    assert (orders.invocations, orders.errors, orders.api) == (2, 1, False)
    assert orders.cost_per_million == pytest.approx(0.20 + 0.125 * 0.051 * 13.3334, abs=0.01)


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 99) == 7.0


def test_function_names_map_to_their_handlers_in_chalice_config():
    assert handler_name("storefront-dev-consume_orders", app="storefront", stage="dev") == "consume_orders"
    assert handler_name("storefront-dev", app="storefront", stage="dev") == "api_handler"
    assert handler_name("api_handler", app="storefront", stage="dev") == "api_handler"


def test_the_terminal_shows_a_table_an_indented_timeline_with_the_linked_trace_and_costs():
    api = assemble(api_order("o-1", fault=True))
    mine = assemble(consumer("o-1"))

    table = trace_table([mine, api])
    assert table.splitlines()[0].split()[:3] == ["START", "(UTC)", "DURATION"]
    assert "order_id=o-1" in table and API_TRACE in table and "fault" in table

    lines = timeline(api, downstream=[mine], width=200).splitlines()
    assert lines[0].startswith(f"trace {API_TRACE}")
    assert any(line.endswith("    POST /orders [FAULT]  order_id=o-1 owner=alice product_id=p-1  ! RuntimeError: boom")
               for line in lines)
    assert any(line.startswith(f"trace {CONSUMER_TRACE} (linked)") for line in lines)
    assert any("      ## consume_orders record" in line for line in lines)

    costs = cost_table(function_costs([api, mine], memory_mb=lambda f: 128, is_api=lambda f: f == "api_handler"))
    assert costs.splitlines()[1].split()[:6] == ["api_handler", "128", "1", "0", "1", "101.0"]


def test_the_terminal_views_fit_the_width_keeping_trace_ids_whole():
    api = assemble(api_order("o-1", fault=True))
    mine = assemble(consumer("o-1"))
    costs = function_costs([api, mine], memory_mb=lambda f: 128, is_api=lambda f: f == "api_handler")

    table = trace_table([mine, api], width=80)
    views = [table, timeline(api, downstream=[mine], width=80), cost_table(costs, width=80)]

    assert all(len(line) <= 80 for view in views for line in view.splitlines())
    assert any(line.strip().startswith(API_TRACE) for line in table.splitlines())
    assert "RuntimeError: boom" in " ".join(views[1].split())  # wrapped, not cut


def test_every_aws_call_names_the_resource_the_sdk_recorded():
    api = assemble(api_order())
    mine = assemble(consumer())

    assert [(s.name, s.resource) for s in api.spans if s.kind == "aws"] == [
        ("dynamodb PutItem", "storefront-dev-OrdersTable"), ("sqs SendMessage", "storefront-dev-OrdersQueue")]
    assert api.spans[3].message_id == "m-o-1" and api.spans[3].service == "sqs"
    # The SDK records no table for TransactWriteItems: nothing is made up.
    assert [(s.operation, s.resource) for s in mine.spans if s.kind == "aws"] == [("TransactWriteItems", "")]


def test_resource_names_come_from_each_kind_of_aws_field():
    assert resource_name({"table_names": "dict_keys(['storefront-dev-B', 'storefront-dev-A'])"}) == (
        "storefront-dev-A, storefront-dev-B")
    assert resource_name({"topic_arn": "arn:aws:sns:us-east-1:1:storefront-dev-ImportChunksTopic"}) == (
        "storefront-dev-ImportChunksTopic")
    assert resource_name({"bucket_name": "uploads", "key": "k"}) == "uploads"
    assert resource_name({"queue_url": "https://sqs.us-east-1.amazonaws.com/1/q-1"}) == "q-1"
    assert resource_name({"operation": "PutEvents"}) == ""
    # What the app's tracer adds for the calls the SDK's whitelist cannot name:
    assert resource_name({"table_names": ["storefront-dev-B", "storefront-dev-A"]}) == (
        "storefront-dev-A, storefront-dev-B")
    assert resource_name({"event_bus_name": "storefront-dev-events"}) == "storefront-dev-events"
    assert resource_name({"state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:OrderSaga"}) == "OrderSaga"
    assert resource_name({"secret_id": "storefront-dev-payments"}) == "storefront-dev-payments"
    assert resource_name({"user_pool_id": "us-east-1_abc"}) == "us-east-1_abc"
    assert resource_name({"email_identity": "orders@shop.example"}) == "orders@shop.example"


def test_a_cold_starts_initialization_is_a_span_of_its_own_and_segments_keep_their_links():
    trace = assemble(raw("1-00000000-000000000000000000000005", {
        "id": "a000000000000009", "trace_id": "1-00000000-000000000000000000000005", "name": "storefront-dev-f",
        "origin": "AWS::Lambda::Function", "start_time": T0, "end_time": T0 + 1.5,
        "links": [{"trace_id": API_TRACE, "id": "b000000000000001"}],
        "subsegments": [
            {"id": "a00000000000000a", "name": "Initialization", "start_time": T0, "end_time": T0 + 1.0},
            {"id": "a00000000000000b", "name": "Invocation", "start_time": T0 + 1.0, "end_time": T0 + 1.5}]}))

    assert [(s.name, s.kind, s.duration_ms) for s in trace.spans[1:]] == [
        ("Initialization", "init", 1000.0), ("Invocation", "subsegment", 500.0)]
    assert trace.spans[0].links == ((API_TRACE, "b000000000000001"),)
    assert trace.spans[0].origin == "AWS::Lambda::Function" and trace.spans[1].parent == "a000000000000009"
