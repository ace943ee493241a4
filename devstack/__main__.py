"""`python -m devstack run | token USER | fire SCHEDULE [--at ISO]` (the Makefile's run/token targets)."""

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

from devstack.stack import PROJECT_DIR, LocalStack, PortInUse, StackOptions

ENDPOINTS = StackOptions.from_env().state_dir / "endpoints.json"


def _endpoints() -> dict:
    try:
        return json.loads(Path(ENDPOINTS).read_text())
    except FileNotFoundError:
        sys.exit("the local stack is not running (no .devstack/endpoints.json): start it with `make run`")


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The stack's own AWS calls (daemon, console, pollers) run outside any segment; the SDK would
    # warn about each of them. App calls always run inside an invocation's segment.
    for noisy in ("werkzeug", "botocore", "urllib3", "pynamodb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("aws_xray_sdk").setLevel(logging.ERROR)
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
    endpoints      {os.path.relpath(stack.endpoints_file)}

  Try:  curl -s {e['api']}/products
        TOKEN=$(make -s token USER=alice)
""", flush=True)
    stop.wait()
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
    e = _endpoints()
    request = urllib.request.Request(
        f"{e['trace_viewer']}/api/schedules/{schedule}/fire", method="POST",
        data=json.dumps({"at": at} if at else {}).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            print(response.read().decode())
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1
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
    args = parser.parse_args(argv)
    if args.command == "run":
        return run()
    if args.command == "token":
        return token(args.username)
    return fire(args.schedule, args.at)


if __name__ == "__main__":
    sys.exit(main())
