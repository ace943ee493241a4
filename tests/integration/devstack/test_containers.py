"""Lambda containers as processes (devstack/containers.py): one invocation at a time per container,
reused while idle, a handler's error reported with its traceback, a timeout ending the container."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.containers import ContainerError, ContainerTimedOut, ProcessContainers
from devstack.lambda_context import FunctionSettings, LambdaContext

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULE = "tests.integration.devstack.container_app"


@pytest.fixture()
def containers():
    pool = ProcessContainers(ROOT, MODULE)
    yield pool
    pool.stop()


def _context(name: str, timeout_s: int = 30) -> LambdaContext:
    return LambdaContext(name, settings=FunctionSettings(timeout_seconds=timeout_s, memory_mb=128),
                         region="us-east-1", account_id="123456789012")


def test_the_handler_gets_the_event_and_lambdas_context_in_a_process_of_its_own(containers):
    context = _context("storefront-dev-echo", timeout_s=30)
    result = containers.invoke("echo", {"hello": ["world", 1]}, context, timeout_s=30)
    assert result["event"] == {"hello": ["world", 1]}
    assert result["pid"] != os.getpid()
    assert (result["function_name"], result["request_id"]) == ("storefront-dev-echo", context.aws_request_id)
    assert 25_000 < result["remaining_ms"] <= 30_000  # counted down from the function's timeout


def test_an_idle_container_is_reused_and_a_busy_one_is_not(containers):
    first = containers.invoke("echo", {}, _context("echo"), timeout_s=30)
    second = containers.invoke("echo", {}, _context("echo"), timeout_s=30)
    assert (second["pid"], second["invocation"]) == (first["pid"], 2)  # warm: module state kept
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda seconds: containers.invoke("slow", {"seconds": seconds}, _context("slow"),
                                                               timeout_s=30), [1, 1]))
    assert both[0]["pid"] != both[1]["pid"]
    assert containers.count == 3  # echo's one, slow's two


def test_a_handlers_exception_is_reported_with_its_traceback_and_the_container_lives_on(containers):
    with pytest.raises(ContainerError) as failure:
        containers.invoke("boom", {}, _context("boom"), timeout_s=30)
    assert "ValueError: the handler refused this event" in str(failure.value)
    assert 'container_app.py", line' in str(failure.value)  # the container's own traceback
    assert containers.invoke("boom", {"fail": False}, _context("boom"), timeout_s=30)["pid"]
    assert containers.count == 1


def test_a_result_that_cannot_leave_the_container_is_an_error(containers):
    with pytest.raises(ContainerError, match="could not be returned"):
        containers.invoke("unpicklable", {}, _context("unpicklable"), timeout_s=30)


def test_an_invocation_over_the_timeout_kills_its_container_and_the_next_one_starts_afresh(containers):
    warm = containers.invoke("slow", {"seconds": 0}, _context("slow"), timeout_s=30)["pid"]
    started = time.monotonic()
    with pytest.raises(ContainerTimedOut):
        containers.invoke("slow", {"seconds": 30}, _context("slow", timeout_s=1), timeout_s=1)
    assert time.monotonic() - started < 10
    assert containers.count == 0
    assert containers.invoke("slow", {"seconds": 0}, _context("slow"), timeout_s=30)["pid"] != warm


def test_stop_ends_every_container(containers):
    pids = {containers.invoke(name, {"seconds": 0}, _context(name), timeout_s=30)["pid"] for name in ("echo", "slow")}
    containers.stop()
    time.sleep(0.5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(ContainerError, match="stopping"):
        containers.invoke("echo", {}, _context("echo"), timeout_s=30)
