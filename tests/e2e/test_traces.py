"""An operator follows one order through the running stack: in the trace viewer (headless Chromium)
and in the terminal (`make traces`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _confirmed_order(stack: Any) -> dict[str, str]:
    """A product, an order for it, and the order once its saga confirmed it."""
    api = stack.endpoints["api"]
    seller, buyer = stack.token(f"seller-{uuid.uuid4().hex[:8]}"), stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    product = requests.post(f"{api}/products", headers=_auth(seller), timeout=10,
                            json={"name": "Lamp", "price_cents": 4500, "currency": "EUR", "stock": 3}).json()
    placed = requests.post(f"{api}/orders", headers=_auth(buyer), timeout=10,
                           json={"product_id": product["id"], "quantity": 1, "payment_method": "pm_card_visa"})
    assert placed.status_code == 202
    order_id = placed.json()["order_id"]
    deadline = time.monotonic() + 60
    status = None
    while status != "confirmed" and time.monotonic() < deadline:
        status = requests.get(f"{api}/orders/{order_id}", headers=_auth(buyer), timeout=10).json().get("status")
        time.sleep(0.3)
    assert status == "confirmed"
    return {"order_id": order_id, "product_id": product["id"],
            "trace_id": placed.headers["X-Amzn-Trace-Id"].split("=", 1)[1]}


def _make(stack: Any, *args: str) -> subprocess.CompletedProcess:
    env = {**stack.env}
    env.pop("COLUMNS", None)  # as from a pipe: the width is unknown
    return subprocess.run(["make", "-s", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _listed(lines: list[str]) -> dict[str, tuple[str, str]]:
    """make traces' table by trace id: (the line with the entry point, the id line's annotations,
    with their wrapped continuation)."""
    traces: dict[str, tuple[str, str]] = {}
    current = None
    for previous, line in zip(lines, lines[1:]):
        if line.startswith("  1-"):
            current = line.split()[0]
            traces[current] = (previous, line)
        elif current and line.startswith("    ") and not line.strip().startswith("+"):
            traces[current] = (traces[current][0], traces[current][1] + line)
        elif not line.startswith(" "):
            current = None
    return traces


def _both(traces: list[dict[str, Any]]) -> bool:
    return {"api_handler POST /orders", "consume_orders"} <= {t["entry"].rsplit(" ## ")[-1] for t in traces}


def _wait_for_both_traces(stack: Any, order_id: str) -> list[dict[str, Any]]:
    """The viewer's list for the order once the request's and the consumer's traces are in X-Ray
    (the buyer's GET /orders/{id} polls carry the order id too)."""
    deadline = time.monotonic() + 60
    while True:
        traces = requests.get(f"{stack.endpoints['trace_viewer']}/api/traces", timeout=30,
                              params={"filter": f'order_id = "{order_id}"'}).json()["traces"]
        if _both(traces) or time.monotonic() > deadline:
            return traces
        time.sleep(0.5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are not installed (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_an_operator_finds_an_orders_whole_path_in_the_viewer(stack, browser):
    from selenium.webdriver.common.by import By

    order = _confirmed_order(stack)
    expected = _wait_for_both_traces(stack, order["order_id"])
    assert _both(expected)

    browser.get(stack.endpoints["trace_viewer"])
    box = browser.find_element(By.ID, "filter")
    box.clear()
    box.send_keys(f'order_id = "{order["order_id"]}"')
    browser.find_element(By.ID, "apply").click()

    rows = browser.find_elements(By.CSS_SELECTOR, "#traces tr.trace")
    assert {r.get_attribute("data-trace-id") for r in rows} >= {t["id"] for t in expected}
    entries = [r.find_element(By.CSS_SELECTOR, "a.trace-link").text for r in rows]
    assert "api_handler POST /orders" in entries
    assert any(e.endswith("consume_orders ## consume_orders") for e in entries)
    assert all(order["order_id"] in r.find_element(By.CSS_SELECTOR, "td.notes").text for r in rows)
    assert "consume_orders" in browser.find_element(By.ID, "costs").text

    request_row = next(r for r in rows if r.get_attribute("data-trace-id") == order["trace_id"])
    request_row.find_element(By.CSS_SELECTOR, "a.trace-link").click()

    spans = browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span")
    segments = {s.get_attribute("data-segment") for s in spans}
    assert "api_handler" in segments
    assert any(name.endswith("consume_orders") for name in segments)
    names = [s.get_attribute("data-name") for s in spans]
    assert "POST /orders" in names and "## consume_orders record" in names
    assert all(s.is_displayed() for s in spans)
    related = browser.find_element(By.ID, "related").text
    assert f'order_id = "{order["order_id"]}"' in related


def test_an_operator_finds_the_same_path_in_the_terminal(stack):
    order = _confirmed_order(stack)
    assert _both(_wait_for_both_traces(stack, order["order_id"]))

    listed = _make(stack, "traces", f'FILTER=order_id = "{order["order_id"]}"')
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)  # not a terminal: 100 columns
    traces = _listed(lines)
    assert traces[order["trace_id"]][0].endswith(" api_handler POST /orders")
    assert all(order["order_id"] in annotations for _, annotations in traces.values())
    assert any(entry.endswith(" storefront-dev-consume_orders ## consume_orders") for entry, _ in traces.values())
    assert any(line.startswith("storefront-dev-consume_orders ") for line in lines)  # the cost table

    timeline = _make(stack, "traces", f"TRACE={order['trace_id']}")
    assert timeline.returncode == 0, timeline.stderr
    assert timeline.stdout.startswith(f"trace {order['trace_id']}")
    assert "POST /orders" in timeline.stdout
    assert "(linked)" in timeline.stdout and "## consume_orders record" in timeline.stdout


ORDERS = 3
QUEUE = "queue:storefront-dev-OrdersQueue"
CONSUMER = "function:storefront-dev-consume_orders"
API = "api:api_handler"
# The reservation's TransactWriteItems: the SDK records no table for it, the app's tracer names both.
RESERVATION_TABLES = "table:storefront-dev-OrdersTable, storefront-dev-ProductsTable"


@pytest.fixture(scope="module")
def orders(stack: Any) -> dict[str, Any]:
    """ORDERS orders of one new product, each confirmed; the map of their traces once X-Ray has them all."""
    api = stack.endpoints["api"]
    seller, buyer = stack.token(f"seller-{uuid.uuid4().hex[:8]}"), stack.token(f"buyer-{uuid.uuid4().hex[:8]}")
    product = requests.post(f"{api}/products", headers=_auth(seller), timeout=10,
                            json={"name": "Kettle", "price_cents": 3900, "currency": "EUR", "stock": 10}).json()
    placed = []
    for _ in range(ORDERS):
        answer = requests.post(f"{api}/orders", headers=_auth(buyer), timeout=10,
                               json={"product_id": product["id"], "quantity": 1, "payment_method": "pm_card_visa"})
        assert answer.status_code == 202
        placed.append({"order_id": answer.json()["order_id"],
                       "trace_id": answer.headers["X-Amzn-Trace-Id"].split("=", 1)[1]})
    filter_text = f'product_id = "{product["id"]}"'
    deadline = time.monotonic() + 90
    while True:
        drawn = requests.get(f"{stack.endpoints['trace_viewer']}/api/map", params={"filter": filter_text},
                             timeout=30).json()
        counts = {(e["source"], e["target"]): e["count"] for e in drawn["edges"]}
        if counts.get((QUEUE, CONSUMER)) == ORDERS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return {"product_id": product["id"], "orders": placed, "filter": filter_text, "map": drawn, "counts": counts}


def _raw_documents(stack: Any, trace_id: str) -> list[dict[str, Any]]:
    from devstack.trace_reader import xray_client
    from devstack.traces import segment_documents

    xray = xray_client(endpoint_url=stack.endpoints["aws_endpoint"], region=stack.endpoints["region"])
    return [d for raw in xray.batch_get_traces(TraceIds=[trace_id])["Traces"] for d in segment_documents(raw)]


def _measured_gap_ms(stack: Any, trace_id: str) -> float:
    """From X-Ray's own documents: the consumer's start minus the end of the SendMessage of its message."""
    def entities(entity: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield entity
        for child in entity.get("subsegments", []):
            yield from entities(child)

    sent = [e for d in _raw_documents(stack, trace_id) for e in entities(d)
            if (e.get("aws") or {}).get("operation") == "SendMessage"]
    assert len(sent) == 1
    message_id = sent[0]["aws"]["message_id"]
    traces = requests.get(f"{stack.endpoints['trace_viewer']}/api/traces/{trace_id}", timeout=30).json()
    consumer = next(d for downstream in traces["downstream"] for d in _raw_documents(stack, downstream)
                    if any(link["trace_id"] == trace_id for link in d.get("links", []))
                    and any((e.get("annotations") or {}).get("message_id") == message_id for e in entities(d)))
    return (consumer["start_time"] - sent[0]["end_time"]) * 1000


def test_the_map_shows_the_order_path_with_its_counts_and_leads_to_the_slowest_calls(stack, browser, orders):
    from selenium.webdriver.common.by import By

    assert orders["counts"][(API, QUEUE)] == ORDERS
    assert orders["counts"][(QUEUE, CONSUMER)] == ORDERS

    browser.get(f"{stack.endpoints['trace_viewer']}/map?" + urlencode({"filter": orders["filter"]}))
    drawn = {(e.get_attribute("data-source"), e.get_attribute("data-target")): e
             for e in browser.find_elements(By.CSS_SELECTOR, "#map a.edge-link")}
    path = [(API, QUEUE, "call"), (QUEUE, CONSUMER, "message"), (CONSUMER, RESERVATION_TABLES, "call")]
    for source, target, kind in path:
        edge = drawn[(source, target)]
        assert (edge.get_attribute("data-count"), edge.get_attribute("data-kind")) == (str(ORDERS), kind)
    assert drawn[(API, "table:storefront-dev-OrdersTable")].get_attribute("data-count") == str(ORDERS)
    nodes = {n.get_attribute("data-node"): n for n in browser.find_elements(By.CSS_SELECTOR, "#map g.node")}
    assert all(nodes[n].is_displayed() for n in (API, QUEUE, CONSUMER, RESERVATION_TABLES))
    waited = float(drawn[(QUEUE, CONSUMER)].get_attribute("data-p99"))
    assert waited > 0

    drawn[(QUEUE, CONSUMER)].click()  # an SVG link: to the edge's slowest calls
    slowest = browser.find_elements(By.CSS_SELECTOR, "#slowest tr.call")
    assert len(slowest) == ORDERS
    assert f"{ORDERS} in the last" in browser.find_element(By.ID, "edge-summary").text
    slowest[0].find_element(By.CSS_SELECTOR, "a.trace-link").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span.kind-queue")

    browser.get(f"{stack.endpoints['trace_viewer']}/?" + urlencode({"node": QUEUE, "filter": orders["filter"]}))
    listed = {r.get_attribute("data-trace-id") for r in browser.find_elements(By.CSS_SELECTOR, "#traces tr.trace")}
    assert {o["trace_id"] for o in orders["orders"]} <= listed


def test_a_trace_shows_the_queue_wait_as_measured_and_the_resource_of_every_call(stack, browser, orders):
    from selenium.webdriver.common.by import By

    order = orders["orders"][0]
    gap_ms = _measured_gap_ms(stack, order["trace_id"])

    browser.get(f"{stack.endpoints['trace_viewer']}/trace/{order['trace_id']}")
    queued = [q for q in browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span.kind-queue")
              if q.get_attribute("data-name") == "waited in storefront-dev-OrdersQueue"]
    assert len(queued) == 1  # the order's message; domain events' consumers may add waits of their own
    assert float(queued[0].get_attribute("data-ms")) == pytest.approx(gap_ms, abs=0.1)
    assert queued[0].is_displayed()
    calls = {s.get_attribute("data-name"): s.get_attribute("data-resource")
             for s in browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span.kind-aws")}
    assert calls["dynamodb PutItem"] == "storefront-dev-OrdersTable"
    assert calls["sqs SendMessage"] == "storefront-dev-OrdersQueue"
    assert calls["dynamodb BatchGetItem"] == "storefront-dev-ProductsTable"
    assert "OrderSaga" in calls["states StartExecution"]
    unnamed = [s.get_attribute("data-name") for s in browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span.kind-aws")
               if not s.get_attribute("data-resource")]
    assert unnamed == []  # every AWS call of the order, the saga's and the events' included
    assert "storefront-dev-OrdersQueue" in browser.find_element(By.ID, "waterfall").text


def test_the_terminal_prints_the_map_and_the_slowest_traces(stack, orders):
    listed = _make(stack, "traces", f"FILTER={orders['filter']}")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()

    assert all(len(line) <= 100 for line in lines)
    rows = {" ".join(line.split()[:3]): line.split()[3:5] for line in lines if " -> " in line}
    assert rows["api_handler -> OrdersQueue"] == ["call", str(ORDERS)]
    assert rows["OrdersQueue -> consume_orders"] == ["message", str(ORDERS)]
    slowest = lines[lines.index("Slowest traces") + 1:]
    assert slowest[0].split()[1] == "ms" and slowest[0].split()[3].startswith("1-")
