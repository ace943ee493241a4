"""The service map, queue time and latency per entry point, from X-Ray documents (no I/O)."""

from __future__ import annotations

import json

import pytest

from devstack.service_map import (
    CLIENTS, UNTRACED, build, entry_stats, fold_polling, layout, queue_spans, short_names, untraced_gaps, with_gaps,
)
from devstack.trace_text import entry_table, map_table, slowest_table, timeline
from devstack.traces import Trace, assemble
from tests.support.traces import T0, api_order, consumer, raw


def _order_path(n: int) -> tuple[list[Trace], list[Trace]]:
    """n orders' requests, and one consumer batch per order linked to its request."""
    requests = [assemble(api_order(f"o-{i}", trace_id=f"1-00000000-{i:024d}", start=T0 + i)) for i in range(n)]
    consumers = [assemble(consumer(f"o-{i}", trace_id=f"1-00000001-{i:024d}", links_to=f"1-00000000-{i:024d}",
                                   start=T0 + i + 0.5 + i * 0.1)) for i in range(n)]
    return requests, consumers


def test_the_order_path_is_drawn_from_the_api_through_the_queue_to_the_consumer_and_its_table():
    requests, consumers = _order_path(3)
    drawn = build([*requests, *consumers])

    path = [("clients", "api_handler"), ("api_handler", "storefront-dev-OrdersQueue"),
            ("storefront-dev-OrdersQueue", "storefront-dev-consume_orders"),
            ("storefront-dev-consume_orders", "dynamodb (name not recorded)")]
    edges = [drawn.edge(a, b) for a, b in path]
    assert [(e.kind, e.count) for e in edges if e] == [("request", 3), ("call", 3), ("message", 3), ("call", 3)]
    assert drawn.edge("api_handler", "storefront-dev-OrdersTable").count == 3  # type: ignore[union-attr]
    kinds = {n.name: n.kind for n in drawn.nodes.values()}
    assert kinds == {"clients": "clients", "api_handler": "api", "storefront-dev-OrdersTable": "table",
                     "storefront-dev-OrdersQueue": "queue", "storefront-dev-consume_orders": "function",
                     "dynamodb (name not recorded)": "table"}


def test_a_messages_edge_measures_the_time_it_waited_between_the_send_and_the_consumers_start():
    requests, consumers = _order_path(2)
    drawn = build([*requests, *consumers])

    waits = sorted(c.duration_ms for c in drawn.edge("storefront-dev-OrdersQueue",  # type: ignore[union-attr]
                                                     "storefront-dev-consume_orders").calls)
    # The send ends at +90 ms; the consumers start at +500 ms and +600 ms after their request.
    assert waits == pytest.approx([410.0, 510.0])


def test_the_queue_span_runs_from_the_send_to_the_consumers_start_and_names_the_queue():
    requests, consumers = _order_path(1)

    [span] = queue_spans(consumers[0], {t.id: t for t in requests})

    assert (span.kind, span.name) == ("queue", "waited in storefront-dev-OrdersQueue")
    assert (span.start, span.end) == (T0 + 0.090, T0 + 0.5)
    assert span.duration_ms == pytest.approx(410.0)
    assert queue_spans(consumers[0], {}) == []  # the producer is not in the window: nothing made up


def test_of_two_messages_sent_by_one_request_the_queue_span_is_the_consumers_own_message():
    document = api_order("o-1")
    # A second send under the same route, after the first: the consumer's message is the first one.
    segment = json.loads(document["Segments"][0]["Document"])
    segment["subsegments"][0]["subsegments"].append(
        {"id": "c000000000000003", "name": "sqs", "namespace": "aws", "start_time": T0 + 0.092,
         "end_time": T0 + 0.095, "aws": {"operation": "SendMessage", "queue_url": "http://x/1/other-queue",
                                          "message_id": "m-other"}})
    producer = assemble(raw(document["Id"], segment))

    [span] = queue_spans(assemble(consumer("o-1", start=T0 + 1)), {producer.id: producer})

    assert span.resource == "storefront-dev-OrdersQueue" and span.start == T0 + 0.090


def test_a_link_to_a_trace_outside_the_window_is_counted_not_drawn():
    _, consumers = _order_path(2)
    drawn = build(consumers)

    assert drawn.unresolved_links == 2
    assert drawn.edge("storefront-dev-OrdersQueue", "storefront-dev-consume_orders") is None
    assert drawn.edge("clients", "storefront-dev-consume_orders") is None


def _saga_step(parent: str, name: str, start: float, duration: float, fault: bool = False) -> dict[str, object]:
    document: dict[str, object] = {
        "id": f"f{abs(hash((name, start))) % 10**15:015d}", "trace_id": "1-00000001-000000000000000000000000",
        "name": f"storefront-dev-{name}", "origin": "AWS::Lambda::Function", "parent_id": parent,
        "start_time": start, "end_time": start + duration}
    if fault:
        document["fault"] = True
    return document


def test_a_state_machines_tasks_are_edges_from_the_state_machine_to_each_step_function():
    request, = _order_path(1)[0]
    documents = consumer("o-0", trace_id="1-00000001-000000000000000000000000", links_to=request.id,
                         start=T0 + 1)
    segment = json.loads(documents["Segments"][0]["Document"])
    record = segment["subsegments"][0]["subsegments"][0]
    record["subsegments"].append({"id": "e000000000000003", "name": "states", "namespace": "aws",
                                  "start_time": T0 + 1.011, "end_time": T0 + 1.020,
                                  "aws": {"operation": "StartExecution"}})
    steps = [_saga_step("e000000000000001", "order_saga_payment", T0 + 1.2, 0.1),
             _saga_step("e000000000000001", "order_saga_payment", T0 + 1.4, 0.1, fault=True),
             _saga_step("e000000000000001", "order_saga_order", T0 + 1.6, 0.2)]
    trace = assemble(raw("1-00000001-000000000000000000000000", segment, *steps))

    drawn = build([request, trace])

    started = drawn.edge("storefront-dev-consume_orders", "states (name not recorded)")
    payment = drawn.edge("states (name not recorded)", "storefront-dev-order_saga_payment")
    order = drawn.edge("states (name not recorded)", "storefront-dev-order_saga_order")
    assert started is not None and started.count == 1
    assert payment is not None and (payment.kind, payment.count, payment.fault_rate) == ("task", 2, 0.5)
    assert order is not None and order.percentile(50) == pytest.approx(200.0)
    assert drawn.edge("storefront-dev-consume_orders", "storefront-dev-order_saga_payment") is None
    assert drawn.nodes["state machine:states (name not recorded)"].kind == "state machine"


def test_on_aws_lambdas_service_segment_is_not_a_node_and_a_gateway_is_one():
    gateway = {"id": "9000000000000001", "trace_id": "1-00000000-000000000000000000000009", "name": "storefront-dev/api",
               "origin": "AWS::ApiGateway::Stage", "start_time": T0, "end_time": T0 + 0.2}
    service = {"id": "9000000000000002", "trace_id": gateway["trace_id"], "name": "storefront-dev",
               "origin": "AWS::Lambda", "parent_id": "9000000000000001", "start_time": T0, "end_time": T0 + 0.2}
    function = {"id": "9000000000000003", "trace_id": gateway["trace_id"], "name": "storefront-dev",
                "origin": "AWS::Lambda::Function", "parent_id": "9000000000000002", "start_time": T0 + 0.01,
                "end_time": T0 + 0.19, "subsegments": [{"id": "9000000000000004", "name": "GET /health",
                                                        "start_time": T0 + 0.02, "end_time": T0 + 0.18}]}
    drawn = build([assemble(raw(str(gateway["trace_id"]), gateway, service, function))])

    assert {(drawn.nodes[e.source].kind, drawn.nodes[e.target].kind, e.count) for e in drawn.edges.values()} == {
        ("clients", "api gateway", 1), ("api gateway", "api", 1)}


def test_failed_calls_are_error_and_fault_rates_and_a_node_lists_the_traces_through_it():
    ok = assemble(api_order("o-1"))
    failed = assemble(api_order("o-2", trace_id="1-00000000-000000000000000000000002", start=T0 + 1, fault=True))
    drawn = build([ok, failed])

    request = drawn.edge("clients", "api_handler")
    assert request is not None and (request.fault_rate, request.error_rate) == (0.5, 0.0)
    assert request.as_dict()["fault_rate"] == 0.5
    assert drawn.traces_by_node["queue:storefront-dev-OrdersQueue"] == {ok.id, failed.id}
    assert drawn.traces_by_node[CLIENTS] == {ok.id, failed.id}


def test_an_edges_slowest_calls_come_first_with_their_traces():
    traces = [assemble(api_order(f"o-{i}", trace_id=f"1-00000000-{i:024d}", start=T0 + i)) for i in range(3)]
    slow = assemble(raw("1-00000000-000000000000000000000099", {
        **json.loads(api_order("o-9")["Segments"][0]["Document"]),
        "trace_id": "1-00000000-000000000000000000000099", "end_time": T0 + 2.0}))
    drawn = build([*traces, slow])

    slowest = drawn.edge("clients", "api_handler").slowest(2)  # type: ignore[union-attr]
    assert [c.trace_id for c in slowest][0] == slow.id
    assert slowest[0].duration_ms == pytest.approx(2000.0)


def test_the_layout_puts_each_hop_of_the_order_path_one_column_further():
    requests, consumers = _order_path(1)
    drawn = build([*requests, *consumers])
    columns = {drawn.nodes[n].name: c for n, (c, _) in layout(drawn).items()}

    assert [columns[n] for n in ("clients", "api_handler", "storefront-dev-OrdersQueue",
                                 "storefront-dev-consume_orders", "dynamodb (name not recorded)")] == [0, 1, 2, 3, 4]


def test_the_layout_survives_a_cycle():
    requests, consumers = _order_path(1)
    drawn = build([*requests, *consumers])
    drawn.edges["loop"] = type(next(iter(drawn.edges.values())))("function:storefront-dev-consume_orders",
                                                                 "api:api_handler", "call")
    assert set(layout(drawn)) == set(drawn.nodes)


def test_per_entry_point_a_histogram_percentiles_and_the_slowest_traces():
    fast = [assemble(api_order(f"o-{i}", trace_id=f"1-00000000-{i:024d}", start=T0 + i)) for i in range(9)]
    requests, consumers = _order_path(1)
    stats = {s.entry: s for s in entry_stats([*fast, *consumers])}

    orders = stats["api_handler POST /orders"]
    assert (orders.count, orders.failed, orders.p50_ms, orders.p99_ms) == (9, 0, 101.0, 101.0)
    assert dict(orders.histogram)[250.0] == 9 and sum(n for _, n in orders.histogram) == 9
    assert len(orders.slowest) == 5
    assert list(stats)[0] == "api_handler POST /orders"  # the busiest first


def _poll(i: int, order_id: str, start: float) -> Trace:
    document = json.loads(api_order(order_id, trace_id=f"1-00000002-{i:024d}", start=start)["Segments"][0]["Document"])
    document["trace_id"] = f"1-00000002-{i:024d}"
    document["subsegments"][0]["name"] = "GET /orders/{order_id}"
    return assemble(raw(document["trace_id"], document))


def test_polling_folds_into_its_newest_trace_and_other_traces_stay():
    polls = [_poll(i, "o-1", T0 + i) for i in range(5)]
    other = _poll(9, "o-2", T0 + 2.5)
    placed = assemble(api_order("o-1", start=T0 + 0.5))
    listed = sorted([*polls, other, placed], key=lambda t: t.start, reverse=True)

    folded = fold_polling(listed)

    assert [(t.id, n) for t, n in folded] == [(polls[4].id, 5), (other.id, 1), (placed.id, 1)]


def test_short_names_drop_the_prefix_most_names_share():
    assert short_names(["storefront-dev-A", "storefront-dev-B", "api_handler", "sqs"]) == {
        "storefront-dev-A": "A", "storefront-dev-B": "B", "api_handler": "api_handler", "sqs": "sqs"}


def test_the_terminal_shows_the_map_as_edges_the_entry_points_and_the_slowest_traces():
    requests, consumers = _order_path(2)
    traces = [*requests, *consumers]
    drawn = build(traces)

    lines = map_table(drawn, width=100).splitlines()
    assert lines[0].split() == ["FROM", "->", "TO", "KIND", "CALLS", "P50", "MS", "P99", "MS", "ERR%", "FAULT%"]
    assert lines[1].split()[:5] == ["clients", "->", "api_handler", "request", "2"]
    assert any(line.split()[:5] == ["OrdersQueue", "->", "consume_orders", "message", "2"] for line in lines)
    assert lines[-1] == "(names without the prefix 'storefront-dev-')"
    assert entry_table(entry_stats(traces)).splitlines()[1].split() == [
        "api_handler", "POST", "/orders", "2", "0", "101.0", "101.0", "101.0"]
    [slowest] = slowest_table(traces, 1).splitlines()
    assert slowest.split()[:3] == ["101.0", "ms", "ok"] and slowest.split()[3] in {t.id for t in requests}


def test_the_terminal_timeline_shows_the_queue_wait_and_resource_names():
    requests, consumers = _order_path(1)
    shown = {t.id: t for t in [*requests, *consumers]}

    text = timeline(requests[0], downstream=consumers, width=200,
                    queues={t.id: queue_spans(t, shown) for t in shown.values()})

    assert "sqs SendMessage storefront-dev-OrdersQueue" in text
    assert "dynamodb PutItem storefront-dev-OrdersTable" in text
    waited = next(line for line in text.splitlines() if "~ waited in storefront-dev-OrdersQueue" in line)
    assert waited.split()[:4] == ["+", "90.0", "ms", "410.0"]


def test_a_blank_before_a_call_is_shown_as_untraced_time_named_for_a_cold_start():
    cold = assemble(api_order("o-1", cold=True))
    warm = assemble(api_order("o-2", start=T0 + 5))

    # POST /orders starts at +1 ms, calls PutItem at +10 ms (until +40) and SendMessage at +50 ms.
    assert untraced_gaps(cold) == {}  # below 20 ms, the default
    gaps = untraced_gaps(cold, min_ms=5.0)
    assert [(before, g.kind, g.duration_ms) for before, g in gaps.items()] == [
        ("c000000000000001", "gap", 9.0), ("c000000000000002", "gap", 10.0)]
    assert gaps["c000000000000001"].name.startswith("untraced, cold start: the container's first use")
    assert gaps["c000000000000002"].name == "untraced: the code's own time (no call recorded)"
    assert {g.name for g in untraced_gaps(warm, min_ms=5.0).values()} == {
        "untraced: the code's own time (no call recorded)"}
    shown = with_gaps(warm.spans, untraced_gaps(warm, min_ms=5.0))
    assert [s.kind for s in shown] == ["segment", "subsegment", "gap", "aws", "gap", "aws"]


@pytest.mark.parametrize(("service", "operation", "fields", "node"), [
    ("sns", "Publish", {"topic_arn": "arn:aws:sns:us-east-1:1:storefront-dev-ImportChunksTopic"},
     "topic:storefront-dev-ImportChunksTopic"),
    ("s3", "PutObject", {"bucket_name": "storefront-dev-uploads-1", "key": "k"}, "bucket:storefront-dev-uploads-1"),
    ("events", "PutEvents", {}, "event bus:events (name not recorded)"),
])
def test_a_message_through_a_topic_a_bucket_or_a_bus_is_an_edge_from_it_timed_by_its_wait(
        service, operation, fields, node):
    producer_id, consumer_id = "1-00000000-000000000000000000000010", "1-00000000-000000000000000000000011"
    producer = {"id": "a000000000000010", "trace_id": producer_id, "name": "storefront-dev-dispatch_import",
                "origin": "AWS::Lambda::Function", "start_time": T0, "end_time": T0 + 0.1,
                "subsegments": [{"id": "b000000000000010", "name": "## dispatch_import", "start_time": T0,
                                 "end_time": T0 + 0.1, "subsegments": [
                                     {"id": "c000000000000010", "name": service, "namespace": "aws",
                                      "start_time": T0 + 0.02, "end_time": T0 + 0.03,
                                      "aws": {"operation": operation, **fields}}]}]}
    consumer_segment = {"id": "a000000000000011", "trace_id": consumer_id, "name": "storefront-dev-import_chunk",
                        "origin": "AWS::Lambda::Function", "start_time": T0 + 0.53, "end_time": T0 + 0.6,
                        "links": [{"trace_id": producer_id, "id": "b000000000000010"}]}
    drawn = build([assemble(raw(producer_id, producer)), assemble(raw(consumer_id, consumer_segment))])

    delivered = drawn.edges[f"{node}>function:storefront-dev-import_chunk"]
    assert (delivered.kind, delivered.count) == ("message", 1)
    assert delivered.percentile(50) == pytest.approx(500.0)
    assert drawn.edges[f"function:storefront-dev-dispatch_import>{node}"].count == 1


def test_a_function_nothing_traced_started_hangs_off_an_untraced_trigger_not_the_clients():
    scheduled = {"id": "a000000000000020", "trace_id": "1-00000000-000000000000000000000020",
                 "name": "storefront-dev-cleanup", "origin": "AWS::Lambda::Function", "start_time": T0,
                 "end_time": T0 + 0.2, "subsegments": [{"id": "b000000000000020", "name": "## cleanup",
                                                        "start_time": T0, "end_time": T0 + 0.2}]}
    drawn = build([assemble(raw("1-00000000-000000000000000000000020", scheduled)), assemble(api_order())])

    assert drawn.edges[f"{UNTRACED}>function:storefront-dev-cleanup"].count == 1
    assert f"{CLIENTS}>function:storefront-dev-cleanup" not in drawn.edges
    assert drawn.edges[f"{CLIENTS}>api:api_handler"].count == 1


def test_a_domain_event_is_handed_off_by_the_table_write_its_stream_recorded_not_a_later_start():
    # The orders consumer reserves stock (one transaction, the products table's stream records it),
    # then starts the saga; the low-stock e-mail is linked to the record it was written under.
    producer_id, consumer_id = "1-00000000-000000000000000000000030", "1-00000000-000000000000000000000031"
    calls = [("dynamodb", "TransactWriteItems", {"table_names": ["storefront-dev-OrdersTable",
                                                                 "storefront-dev-ProductsTable"]}, 0.02),
             ("states", "StartExecution", {"state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:Saga"}, 0.05)]
    producer = {"id": "a000000000000030", "trace_id": producer_id, "name": "storefront-dev-consume_orders",
                "origin": "AWS::Lambda::Function", "start_time": T0, "end_time": T0 + 0.1,
                "subsegments": [{"id": "b000000000000030", "name": "## consume_orders record", "start_time": T0,
                                 "end_time": T0 + 0.1, "subsegments": [
                                     {"id": f"c00000000000003{n}", "name": service, "namespace": "aws",
                                      "start_time": T0 + at, "end_time": T0 + at + 0.01,
                                      "aws": {"operation": operation, **fields}}
                                     for n, (service, operation, fields, at) in enumerate(calls)]}]}
    consumer_segment = {"id": "a000000000000031", "trace_id": consumer_id, "name": "storefront-dev-email_low_stock",
                        "origin": "AWS::Lambda::Function", "start_time": T0 + 1.03, "end_time": T0 + 1.1,
                        "links": [{"trace_id": producer_id, "id": "b000000000000030"}],
                        "subsegments": [{"id": "b000000000000031", "name": "## email_low_stock record",
                                         "start_time": T0 + 1.03, "end_time": T0 + 1.1,
                                         "annotations": {"event_id": "e-1-StockLow"}}]}
    drawn = build([assemble(raw(producer_id, producer)), assemble(raw(consumer_id, consumer_segment))])

    table = "table:storefront-dev-OrdersTable, storefront-dev-ProductsTable"
    delivered = drawn.edges[f"{table}>function:storefront-dev-email_low_stock"]
    assert (delivered.kind, delivered.count) == ("message", 1)
    assert delivered.percentile(50) == pytest.approx(1000.0)
    assert "state machine:Saga>function:storefront-dev-email_low_stock" not in drawn.edges
