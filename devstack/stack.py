"""The whole local stack in one process: moto, resources, the API, event delivery and traces.

    moto (ThreadedMotoServer)  <- provisioned from infra/resources.json
    Chalice local server       <- the real app.py, stage env vars applied by hand
    EventSourceEmulator        <- SQS / SNS / schedule / DynamoDB stream triggers with Lambda's semantics
    XRayDaemon                 <- the app's UDP segments -> moto's X-Ray API
    Console                    <- traces, schedules and a "fire now" at trace_viewer; the mailbox
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.containers import ProcessContainers

if TYPE_CHECKING:  # imported where used: the X-Ray SDK costs other commands ~0.4 s
    from devstack.lambda_tracing import FunctionTracing

__all__ = ["StackOptions", "LocalStack", "PortInUse"]

log = logging.getLogger("devstack")

PROJECT_DIR = Path(__file__).resolve().parent.parent
ACCOUNT_ID = "123456789012"


def _short(bucket_logical_id: str) -> str:
    """UploadsBucket -> uploads."""
    return bucket_logical_id.removesuffix("Bucket").lower()


class PortInUse(RuntimeError):
    pass


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    api_port: int = 8000
    aws_port: int = 5000
    trace_port: int = 8001
    region: str = "us-east-1"
    stage: str = "dev"
    state_dir: Path = field(default_factory=lambda: PROJECT_DIR / ".devstack")
    # Failed SQS records come back after this many seconds instead of the queue's visibility
    # timeout, so retries and redrive show up while you watch (a deliberate local deviation).
    retry_delay_seconds: float = 1.0
    # Each function's containers are processes, as in Lambda (devstack/containers.py); "thread"
    # runs handlers in threads of the stack's process instead (quicker to start, one interpreter).
    process_containers: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StackOptions:
        return cls(
            api_port=int(env.get("API_PORT", 8000)), aws_port=int(env.get("AWS_PORT", 5000)),
            trace_port=int(env.get("TRACE_PORT", 8001)), region=env.get("AWS_REGION_LOCAL", "us-east-1"),
            stage=env.get("STAGE", "dev"),
            state_dir=Path(env.get("DEVSTACK_DIR", PROJECT_DIR / ".devstack")),
            retry_delay_seconds=float(env.get("DEVSTACK_RETRY_DELAY", 1.0)),
            process_containers=env.get("DEVSTACK_CONTAINERS", "process") != "thread")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _claim(host: str, port: int, variable: str) -> int:
    """The port to use: `port`, or a free one when 0; raises PortInUse naming the variable."""
    if port == 0:
        return _free_port(host)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUse(f"port {port} on {host} is in use: stop what holds it or set {variable}=<port>") from None
    return port


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.endpoints: dict[str, Any] = {}
        self._stoppers: list[tuple[str, Any]] = []
        self._stopped = threading.Event()
        self.emulator: Any = None

    @property
    def endpoints_file(self) -> Path:
        return self.options.state_dir / "endpoints.json"

    def start(self) -> dict[str, Any]:
        """Bring everything up; returns what endpoints.json says. Stops what it started on failure."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> dict[str, Any]:
        from moto.server import ThreadedMotoServer

        from devstack.chalice_config import StageConfig
        from devstack.console_logs import configure_app_logs
        from devstack.console import Console
        from devstack.emulator import EventSourceEmulator
        from devstack.lambda_tracing import FunctionTracing, use_lambda_context
        from devstack.provision import provision
        from devstack.xray_daemon import XRayDaemon
        from infra.resources import load_template

        o = self.options
        api_port = _claim(o.host, o.api_port, "API_PORT")
        aws_port = _claim(o.host, o.aws_port, "AWS_PORT")
        trace_port = _claim(o.host, o.trace_port, "TRACE_PORT")
        aws_endpoint = f"http://{o.host}:{aws_port}"
        stage = StageConfig(o.stage)
        stack_name = f"{stage.app_name}-{o.stage}"

        # Everything in this process, the app included, talks to moto and never to real AWS.
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update({
            "AWS_ENDPOINT_URL": aws_endpoint, "AWS_DEFAULT_REGION": o.region, "AWS_REGION": o.region,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing"})

        from devstack.moto_isolation import install as isolate_moto_requests
        from devstack.moto_speedups import install as speed_up_moto

        speed_up_moto()
        isolate_moto_requests()
        from devstack import mailbox

        mailbox.record_send_times()
        moto = ThreadedMotoServer(ip_address=o.host, port=aws_port, verbose=False)
        moto.start()
        self._stoppers.append(("aws", moto.stop))
        from devstack.step_functions import route_lambda_tasks, run_executions

        self._stoppers.append(("state machine executions", run_executions(aws_port)))
        from devstack.event_bus import pass_trace_headers

        self._stoppers.append(("event bus trace headers", pass_trace_headers()))

        provisioned = provision(load_template(), endpoint_url=aws_endpoint, region=o.region,
                                stack_name=stack_name, account_id=ACCOUNT_ID)
        import boto3

        session = boto3.Session(region_name=o.region)
        daemon = XRayDaemon(session.client("xray", endpoint_url=aws_endpoint), host=o.host)
        daemon.start()
        self._stoppers.append(("xray daemon", daemon.stop))

        summary = provisioned.summary()
        os.environ.update(stage.environment())
        mailbox.verify_sender(session.client("sesv2", endpoint_url=aws_endpoint), os.environ.get("MAIL_FROM", ""))
        os.environ.update(provisioned.env())
        os.environ.update({
            "STAGE": o.stage,
            "COGNITO_JWKS_URL": f"{aws_endpoint}/{summary['user_pool_id']}/.well-known/jwks.json",
            "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
        })

        # The payment provider's stand-in, its key in the secret as an operator puts Stripe's on AWS.
        from devstack.payments import PaymentsStandIn

        payments = PaymentsStandIn(host=o.host).start()
        self._stoppers.append(("payments", payments.stop))
        session.client("secretsmanager", endpoint_url=aws_endpoint).put_secret_value(
            SecretId=provisioned["PaymentsApiKeySecret"].ref, SecretString=payments.api_key)
        os.environ["PAYMENTS_API_URL"] = payments.url

        # The API (and DEVSTACK_CONTAINERS=thread handlers) run in this process's threads.
        use_lambda_context(daemon.address)
        tracing = FunctionTracing(daemon.address)
        app = self._import_app()
        configure_app_logs()
        self.app = app
        api = self._serve_api(app, stage, api_port, tracing)

        self.emulator = EventSourceEmulator(
            app, session=session, endpoint_url=aws_endpoint, region=o.region, account_id=ACCOUNT_ID,
            resolve_queue_url=provisioned.queue_url, resolve_topic_arn=provisioned.topic_arn,
            settings_for=stage.function_settings, function_name_prefix=stage.function_prefix,
            retry_delay_seconds=o.retry_delay_seconds,
            containers=ProcessContainers(str(PROJECT_DIR), "app") if o.process_containers else None,
            tracing=tracing, stream_mappings=provisioned.stream_mappings())
        self.emulator.start()
        self._stoppers.append(("event delivery", self.emulator.stop))

        # The state machines' Lambda tasks run in the same containers as every other trigger.
        self._stoppers.append(("state machine tasks", route_lambda_tasks(
            self.emulator.invoke, [self.emulator.function(f.name) for f in app.pure_lambda_functions],
            account_id=ACCOUNT_ID, region=o.region)))

        from devstack.trace_reader import Pricing, StackXRay

        pricing = Pricing(o.stage)
        console = Console(host=o.host, port=trace_port, xray=StackXRay(ACCOUNT_ID, o.region),
                          emulator=self.emulator, memory_mb=pricing.memory_mb, is_api=pricing.is_api,
                          mailbox=functools.partial(mailbox.messages, ACCOUNT_ID, o.region))
        console.start()
        self._stoppers.append(("trace viewer", console.stop))

        self.endpoints = {
            "api": f"http://{o.host}:{api.port}", "aws_endpoint": aws_endpoint, "region": o.region,
            "trace_viewer": f"http://{o.host}:{trace_port}",
            "user_pool_id": summary["user_pool_id"], "user_pool_client_id": summary["user_pool_client_id"],
            # API.md's names for buckets ("uploads", ...); other resources by logical id.
            "buckets": {_short(lid): name for lid, name in summary["buckets"].items()},
            "tables": summary["tables"], "queues": summary["queues"],
            "topics": summary["topics"], "state_machines": summary["state_machines"],
            "event_bus": summary["event_bus"],
            "payments": payments.url,
            "mailbox": f"http://{o.host}:{trace_port}/mail",
        }
        self._write_endpoints()
        return self.endpoints

    @staticmethod
    def _import_app() -> Any:
        if str(PROJECT_DIR) not in sys.path:
            sys.path.insert(0, str(PROJECT_DIR))
        return importlib.import_module("app").app

    def _serve_api(self, app: Any, stage: Any, port: int, tracing: FunctionTracing) -> Any:
        from chalice.local import ChaliceRequestHandler, ThreadedHTTPServer, create_local_server

        function_name = stage.chalice.function_name  # "api_handler", as chalice local names it

        class AnyMethodHandler(ChaliceRequestHandler):
            """http.server answers a method with no do_<METHOD> (TRACE, QUERY, ...) with an HTML 501
            of its own; API Gateway answers such methods with a 4xx. Hand every method to the app,
            which answers 405 in its error shape for a method the route does not have."""

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return self._generic_handle
                raise AttributeError(name)

            def _generic_handle(self) -> None:
                # Each request is an invocation of the API's function, traced as Lambda traces it.
                with tracing.in_thread(function_name, trace_header=self.headers.get("X-Amzn-Trace-Id")):
                    super()._generic_handle()

            # ChaliceRequestHandler binds these to its own _generic_handle, bypassing an override.
            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

            def log_message(self, format: str, *args: Any) -> None:
                # The app logs one line per request itself; an access log line would repeat it.
                log.debug(format, *args)

        # socketserver's default listen backlog is 5: a burst of clients (the orders benchmark's
        # 16 threads) overflowed it and saw connections reset. Set before the server listens.
        ThreadedHTTPServer.request_queue_size = 128
        server = create_local_server(app, stage.chalice, self.options.host, port)
        server.server.RequestHandlerClass = functools.partial(
            AnyMethodHandler, app_object=app, config=stage.chalice)
        thread = threading.Thread(target=server.server.serve_forever, name="api", daemon=True)
        thread.start()

        def stop_api() -> None:
            server.server.shutdown()
            server.server.server_close()
            thread.join(5)

        self._stoppers.append(("api", stop_api))
        return server

    def _write_endpoints(self) -> None:
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        partial = self.endpoints_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.endpoints, indent=2) + "\n", encoding="utf-8")
        partial.replace(self.endpoints_file)  # readers never see half a file

    def stop(self) -> None:
        """Remove endpoints.json first (the stack stops being ready), then stop in reverse order."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.endpoints_file.unlink(missing_ok=True)
        for name, stop in reversed(self._stoppers):
            try:
                stop()
            except Exception:  # keep stopping the rest; a half-stopped stack holds ports
                log.exception("stopping %s failed", name)
        self._stoppers.clear()
