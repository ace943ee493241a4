"""`python -m devstack run | token USER | fire SCHEDULE [--at ISO] | invoke FUNCTION [--event JSON] | traces [...] |
traces-ui [...] | mail [--limit N]`
(Makefile targets)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack.stack import LocalStack, PortInUse, StackOptions

ENDPOINTS = StackOptions.from_env().state_dir / "endpoints.json"


def _endpoints() -> dict[str, Any]:
    try:
        endpoints: dict[str, Any] = json.loads(Path(ENDPOINTS).read_text())
        return endpoints
    except FileNotFoundError:
        sys.exit("the local stack is not running (no .devstack/endpoints.json): start it with `make run`")


def run() -> int:
    from devstack.console_logs import configure_stack_logs

    configure_stack_logs()
    # The stack's own AWS calls (daemon, console, pollers) run outside any segment; the SDK would
    # warn about each of them. App calls always run inside an invocation's segment.
    for noisy in ("werkzeug", "botocore", "urllib3", "pynamodb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("aws_xray_sdk").setLevel(logging.ERROR)
    # moto's ASL interpreter logs at ERROR every exception a state's evaluation raises, handled ones
    # included: the saga's `Route` choice (IsPresent on an order's absent `action`) printed one per
    # order. An execution's outcome is in its history (`aws stepfunctions get-execution-history`).
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stack = LocalStack(StackOptions.from_env())
    try:
        e = stack.start()
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"""
  Storefront local stack is up                     (Ctrl-C stops it)
    API            {e['api']}
    AWS endpoint   {e['aws_endpoint']}   (aws --endpoint-url {e['aws_endpoint']} ...)
    trace viewer   {e['trace_viewer']}
    event bus      {e['event_bus']}   (aws events list-rules --event-bus-name {e['event_bus']})
    mailbox        {e['mailbox']}   (make mail)
    payments       {e['payments']}   (the stand-in provider; test cards pm_card_visa, ...)
    endpoints      {os.path.relpath(stack.endpoints_file)}

  Try:  curl -s {e['api']}/products
        TOKEN=$(make -s token USER=alice)
""", flush=True)
    # Woken twice a second: a signal delivered to another thread runs its handler only when the
    # main thread next runs Python, and a wait without a timeout may never return to it.
    while not stop.wait(0.5):
        pass
    print("stopping...", flush=True)
    stack.stop()
    return 0


def token(username: str) -> int:
    import boto3

    from devstack.tokens import issue_token

    e = _endpoints()
    cognito = boto3.client("cognito-idp", endpoint_url=e["aws_endpoint"], region_name=e["region"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    print(issue_token(cognito, e["user_pool_id"], e["user_pool_client_id"], username))
    return 0


def fire(schedule: str, at: str | None) -> int:
    return _post(f"/api/schedules/{schedule}/fire", {"at": at} if at else {})


def invoke(function: str, event: str) -> int:
    try:
        payload = json.loads(event)
    except ValueError as exc:
        print(f"error: the event is not JSON: {exc}", file=sys.stderr)
        return 2
    return _post(f"/api/functions/{function}/invoke", payload)


def _post(path: str, body: object) -> int:
    e = _endpoints()
    request = urllib.request.Request(
        f"{e['trace_viewer']}{path}", method="POST",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            print(response.read().decode())
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1
    return 0


def mail(limit: int) -> int:
    from devstack.mailbox import mail_text
    from devstack.trace_text import terminal_width

    e = _endpoints()
    try:
        with urllib.request.urlopen(e["mailbox"], timeout=30) as response:
            entries = json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: the mailbox at {e['mailbox']} did not answer: {exc}", file=sys.stderr)
        return 1
    print(mail_text(entries, source=e["mailbox"], width=terminal_width(), limit=limit))
    return 0


def _trace_source(profile: str | None, region: str | None) -> tuple[object, str]:
    """An X-Ray client and where it reads: the running local stack, or a real account with a profile."""
    from devstack.trace_reader import xray_client

    if profile:
        import boto3

        region = region or boto3.Session(profile_name=profile).region_name or "us-east-1"
        return xray_client(endpoint_url=None, region=region, profile=profile), f"AWS profile {profile} ({region})"
    e = _endpoints()
    os.environ.pop("AWS_PROFILE", None)  # an exported profile must not stand between us and the local stack
    return xray_client(endpoint_url=e["aws_endpoint"], region=e["region"]), f"local stack {e['aws_endpoint']}"


def traces(filter_text: str, trace_id: str | None, minutes: int, entry: str, errors_only: bool,
           profile: str | None, region: str | None, stage: str) -> int:
    from devstack.trace_reader import Pricing, TraceReader
    from devstack.service_map import build, entry_stats, queue_spans, untraced_gaps
    from devstack.trace_text import (
        cost_table, entry_table, map_table, slowest_table, terminal_width, timeline, trace_table, wrap,
    )
    from devstack.traces import LAMBDA_GB_SECOND_PRICE, FilterError, function_costs, linked, parse_filter, select

    xray, source = _trace_source(profile, region)
    reader = TraceReader(xray)
    width = terminal_width()
    if trace_id:
        trace = reader.get(trace_id)
        if trace is None:
            print(f"no trace {trace_id} in {source}", file=sys.stderr)
            return 1
        upstream, downstream = linked(trace, reader.recent(minutes=minutes))
        shown = {t.id: t for t in [*upstream, trace, *downstream]}
        print(timeline(trace, upstream=upstream, downstream=downstream, width=width,
                       queues={t.id: queue_spans(t, shown) for t in shown.values()},
                       gaps={t.id: untraced_gaps(t) for t in shown.values()}))
        return 0
    try:
        clauses = parse_filter(filter_text)
    except FilterError as exc:
        print(f"FILTER: {exc}", file=sys.stderr)
        return 2
    window = reader.recent(minutes=minutes)
    chosen = select(window, clauses, entry=entry, errors_only=errors_only)
    pricing = Pricing(stage)
    print(wrap(f"{len(chosen)} of {len(window)} traces of the last {minutes} min in {source}"
               + (f", filter {filter_text}" if filter_text else ""), width))
    print(trace_table(chosen[:50], width=width))
    if len(chosen) > 50:
        print(f"... and {len(chosen) - 50} older (narrow it with FILTER or MINUTES)")
    print("\n" + wrap("Cost per function (these traces; Lambda $0.20/M requests + "
                      f"${LAMBDA_GB_SECOND_PRICE:.10f}/GB-s on arm64, API Gateway REST $3.50/M)", width))
    print(cost_table(function_costs(chosen, memory_mb=pricing.memory_mb, is_api=pricing.is_api), width=width))
    print("\n" + wrap("Service map (these traces; message: the time it waited in its queue before the consumer "
                      "started; task: a state machine's task)", width))
    print(map_table(build(chosen), width=width))
    print("\nLatency per entry point")
    print(entry_table(entry_stats(chosen), width=width))
    print("\nSlowest traces")
    print(slowest_table(chosen, width=width))
    print("\nOne trace as a timeline: make traces TRACE=<trace id>")
    return 0


def traces_ui(profile: str | None, region: str | None, port: int, stage: str) -> int:
    from devstack.console import Console
    from devstack.trace_reader import Pricing

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    xray, source = _trace_source(profile, region)
    pricing = Pricing(stage)
    console = Console(host="127.0.0.1", port=port, xray=xray, emulator=None, memory_mb=pricing.memory_mb,
                      is_api=pricing.is_api)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.start()
    print(f"trace viewer for {source}: http://127.0.0.1:{console.port}   (Ctrl-C stops it)", flush=True)
    while not stop.wait(0.5):  # see run()
        pass
    console.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole local stack in the foreground")
    token_cmd = commands.add_parser("token", help="print an ID token for a local user (created if needed)")
    token_cmd.add_argument("username")
    fire_cmd = commands.add_parser("fire", help="run a schedule now on the running stack")
    fire_cmd.add_argument("schedule")
    fire_cmd.add_argument("--at", help="the event's time, ISO 8601 (default: now)")
    invoke_cmd = commands.add_parser("invoke", help="invoke a function on the running stack, as aws lambda invoke")
    invoke_cmd.add_argument("function", help="its handler's name, e.g. rebuild_sales")
    invoke_cmd.add_argument("--event", default="{}", help="the event, JSON (default {})")
    for name, helptext in (("traces", "recent traces as a table, or one as a timeline (--trace)"),
                           ("traces-ui", "the trace viewer alone, e.g. against a real account (--profile)")):
        cmd = commands.add_parser(name, help=helptext)
        # Never from the environment: an exported AWS_PROFILE must not turn a look at the local
        # stack into reading production.
        cmd.add_argument("--profile", default=None,
                         help="read a real account's X-Ray with this profile (default: the local stack)")
        cmd.add_argument("--region", default=None)
        cmd.add_argument("--stage", default=os.environ.get("STAGE", "dev"), help="for memory sizes in costs")
        if name == "traces":
            cmd.add_argument("--filter", default="", help='e.g. order_id = "..." (AND joins clauses)')
            cmd.add_argument("--trace", default=None, help="one trace id: print it as a timeline")
            cmd.add_argument("--minutes", type=int, default=60)
            cmd.add_argument("--entry", default="", help="only entry points containing this text")
            cmd.add_argument("--errors", action="store_true", help="only traces with an error or fault")
        else:
            cmd.add_argument("--port", type=int, default=int(os.environ.get("TRACE_PORT", 8001)))
    mail_cmd = commands.add_parser("mail", help="the e-mail the app sent, newest first")
    mail_cmd.add_argument("--limit", type=int, default=20, help="show at most this many (default 20)")
    args = parser.parse_args(argv)
    if args.command in ("traces", "traces-ui"):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if args.command == "traces":
                return traces(args.filter, args.trace, args.minutes, args.entry, args.errors, args.profile,
                              args.region, args.stage)
            return traces_ui(args.profile, args.region, args.port, args.stage)
        except (BotoCoreError, ClientError) as exc:  # no profile, no credentials, no permission
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.command == "run":
        return run()
    if args.command == "token":
        return token(args.username)
    if args.command == "mail":
        return mail(args.limit)
    if args.command == "invoke":
        return invoke(args.function, args.event)
    return fire(args.schedule, args.at)


if __name__ == "__main__":
    sys.exit(main())
