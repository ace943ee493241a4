"""What `make package` built, run as Lambda runs it.

The function zip and the layer are unpacked into a clean folder (Lambda's /var/task and
/opt/python); each function's Handler is imported by a bare Python 3.13 (``-I -S``: no venv, no
site-packages) with only those two folders on sys.path, and runs real events of its kind against
the embedded AWS stand-in: the API's requests, S3's notifications and the SNS deliveries read from
the real queues, the hourly schedule. So a module missing from the layer, a handler string that
does not resolve, or a dependency the functions take from the test's venv fails here.

The package is for arm64; when this machine is not, its native modules cannot load here. The run
then uses the layer that the same code builds from the same lock for this machine, and proves
the shipped one equivalent: the same distributions, every module file the run loaded present in
the arm64 layer, and every binary of the arm64 layer built for aarch64 and glibc <= 2.34.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from devstack.provision import Provisioned, provision
from devstack.tokens import issue_token
from infra.artifact import PACKAGE_LIMIT_BYTES, PLATFORMS, MiB, binary_problems, zip_size
from infra.bundle import LAMBDA_RUNTIME, LAYER_LOCK, LAYER_ZIP, build_layer
from infra.package import functions
from infra.resources import load_template
from tests.support.image_corpus import jpeg
from tests.support.moto import running_moto_server
from tests.support.sqs import LambdaQueue

pytestmark = pytest.mark.timeout(600)

RUNTIME_SCRIPT = Path(__file__).with_name("lambda_runtime.py")
REGION = "us-east-1"
HOST_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
# The interpreter under the venv: a bare 3.13, as Lambda's runtime is.
BARE_PYTHON = getattr(sys, "_base_executable", sys.executable)


@dataclass(frozen=True)
class Artifact:
    template: dict[str, Any]
    architecture: str
    task: Path  # /var/task
    layer: Path  # /opt/python, as shipped
    run_layer: Path  # the layer the functions run with here (the shipped one when the CPU matches)
    zips: tuple[Path, Path]


def _unzip(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as zipped:
        zipped.extractall(into)
    return into


@pytest.fixture(scope="module")
def artifact(packaged: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    folder = packaged["dev"]
    template = json.loads((folder / "template.json").read_text())
    (architecture,) = {template["Resources"][i]["Properties"]["Architectures"][0]
                       for i in functions(template).values()}
    root = tmp_path_factory.mktemp("lambda")
    task = _unzip(folder / "deployment.zip", root / "var" / "task")
    layer = _unzip(folder / LAYER_ZIP, root / "opt") / "python"
    run_layer = layer
    if architecture != HOST_ARCHITECTURE:
        here = build_layer(LAYER_LOCK, root / f"layer-{HOST_ARCHITECTURE}.zip", HOST_ARCHITECTURE)
        run_layer = _unzip(here, root / f"opt-{HOST_ARCHITECTURE}") / "python"
    return Artifact(template, architecture, task, layer, run_layer, (folder / "deployment.zip", folder / LAYER_ZIP))


class Function:
    """One function's container: a bare interpreter that imported its Handler, taking events."""

    def __init__(self, name: str, handler: str, env: dict[str, str], artifact: Artifact, log: Path) -> None:
        self.name = name
        self.handler = handler
        self._log = open(log, "w")
        self._process = subprocess.Popen(
            [BARE_PYTHON, "-I", "-S", str(RUNTIME_SCRIPT), str(artifact.task), str(artifact.run_layer), handler],
            cwd=artifact.task, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise AssertionError(f"{self.name} exited: {Path(self._log.name).read_text()[-3000:]}")
        return dict(json.loads(line))

    def invoke(self, event: dict[str, Any]) -> Any:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(event) + "\n")
        self._process.stdin.flush()
        answer = self._answer()
        assert "error" not in answer, f"{self.name} raised:\n{answer['error']}"
        return answer["result"]

    def loaded_files(self) -> list[str]:
        assert self._process.stdin is not None
        self._process.stdin.write("\n")
        self._process.stdin.flush()
        return list(self._answer()["modules"])

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        self._process.wait(10)
        self._log.close()


@dataclass(frozen=True)
class Stack:
    endpoint_url: str
    provisioned: Provisioned
    functions: dict[str, Function]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def queue(self, env_name: str) -> LambdaQueue:
        return LambdaQueue(self.client("sqs"), self.provisioned.env()[env_name], REGION)

    def token(self, user: str) -> str:
        summary = self.provisioned.summary()
        return issue_token(self.client("cognito-idp"), summary["user_pool_id"], summary["user_pool_client_id"], user)


def _lambda_env(variables: dict[str, Any], provisioned: Provisioned, endpoint_url: str, name: str) -> dict[str, str]:
    """The function's environment as the template gives it (each Ref the provisioned name), plus what
    Lambda sets and what reaches the stand-in instead of AWS."""
    names = provisioned.env()
    env = {key: value if isinstance(value, str) else names[key] for key, value in variables.items()}
    pool_id = provisioned.summary()["user_pool_id"]
    return {
        **env, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": endpoint_url, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "COGNITO_JWKS_URL": f"{endpoint_url}/{pool_id}/.well-known/jwks.json",
        "LAMBDA_TASK_ROOT": "/var/task", "AWS_LAMBDA_FUNCTION_NAME": f"storefront-dev-{name}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{LAMBDA_RUNTIME}", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        # Traced, as on Lambda: the X-Ray SDK in Lambda mode, its segments sent to no daemon.
        "_X_AMZN_TRACE_ID": "Root=1-67000000-000000000000000000000001;Parent=0000000000000001;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    }


@pytest.fixture(scope="module")
def stack(artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("logs")
    with running_moto_server() as endpoint_url:
        provisioned = provision(load_template(), endpoint_url=endpoint_url, region=REGION)
        started: dict[str, Function] = {}
        try:
            for name, logical_id in functions(artifact.template).items():
                props = artifact.template["Resources"][logical_id]["Properties"]
                env = _lambda_env(props["Environment"]["Variables"], provisioned, endpoint_url, name)
                started[name] = Function(name, props["Handler"], env, artifact, logs / f"{name}.log")
            yield Stack(endpoint_url, provisioned, started)
        finally:
            for function in started.values():
                function.close()


def api_event(method: str, resource: str, token: str | None = None, body: Any = None,
              **params: str) -> dict[str, Any]:
    """API Gateway's proxy event for ``resource`` (``/products/{product_id}``) with ``params``."""
    path = resource.format(**params)
    headers = {"Host": "artifact.test", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": params or None, "stageVariables": None,
        "body": None if body is None else json.dumps(body), "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": str(uuid.uuid4()),
                           "path": f"/api{path}", "stage": "api", "identity": {"sourceIp": "127.0.0.1"}},
    }


def call(stack: Stack, method: str, resource: str, status: int, token: str | None = None, body: Any = None,
         **params: str) -> Any:
    response = stack.functions["api_handler"].invoke(api_event(method, resource, token, body, **params))
    assert response["statusCode"] == status, response
    return json.loads(response["body"]) if response.get("body") else None


def consume(stack: Stack, function: str, queue: LambdaQueue, messages: list[dict[str, Any]]) -> None:
    """Hand ``messages`` to the consumer as the event source mapping would; all must succeed."""
    assert stack.functions[function].invoke(queue.event(messages)) == {"batchItemFailures": []}
    queue.delete(messages)


def upload(form: dict[str, Any], data: bytes, content_type: str) -> None:
    sent = requests.post(form["url"], data=form["fields"], files={"file": ("f", data, content_type)}, timeout=30)
    assert sent.status_code == 204, sent.text


def start_import(stack: Stack, token: str, rows: int) -> tuple[str, dict[str, Any]]:
    """A job and its upload's notification on the real ImportUploadsQueue."""
    uploads = stack.queue("IMPORT_UPLOADS_QUEUE")
    created = call(stack, "POST", "/imports", 201, token)
    csv = "name,description,price_cents,currency,stock\n" + "".join(
        f"Item {i},Imported,{100 + i},EUR,{i}\n" for i in range(rows))
    upload(created["upload"], csv.encode(), "text/csv")
    (notification,) = uploads.receive(1, skip=lambda m: "s3:TestEvent" in m["Body"])
    return created["job_id"], notification


# -- the tests ------------------------------------------------------------------------------------

def test_the_package_is_for_python_3_13_on_arm64_with_one_layer(artifact: Artifact) -> None:
    for logical_id in functions(artifact.template).values():
        props = artifact.template["Resources"][logical_id]["Properties"]
        assert (props["Runtime"], props["Architectures"], props["Layers"]) == (
            "python3.13", ["arm64"], [{"Ref": "DependenciesLayer"}]), logical_id
    assert sys.version_info[:2] == (3, 13), "the tests must run the runtime Lambda runs"


def test_every_handler_string_resolves_in_a_bare_interpreter_with_only_the_package(stack: Stack) -> None:
    for name, function in stack.functions.items():
        assert function.ready == {"ready": function.handler}, name
    assert set(stack.functions) == {"api_handler", "consume_orders", "process_images", "dispatch_import",
                                    "import_chunk", "dispatch_import_dead_letter", "import_chunk_dead_letter",
                                    "cleanup", "orders_dead_letter", "order_saga_payment", "order_saga_order",
                                    "order_saga_notify", "publish_product_events", "publish_order_events",
                                    "recover_lost_changes", "project_sales", "email_low_stock", "sales_dead_letter",
                                    "low_stock_dead_letter", "rebuild_sales"}


def test_every_binary_of_the_package_fits_the_functions_cpu_and_glibc(artifact: Artifact) -> None:
    for path in artifact.zips:
        assert binary_problems(path, PLATFORMS[artifact.architecture]) == [], path.name


def test_the_package_unpacked_stays_under_our_limit(artifact: Artifact) -> None:
    unpacked = sum(zip_size(path).unpacked for path in artifact.zips)

    assert unpacked <= PACKAGE_LIMIT_BYTES, f"{unpacked / MiB:.1f} MiB unpacked"


def test_the_api_creates_and_serves_a_product(stack: Stack) -> None:
    token = stack.token("artifact-seller")

    assert call(stack, "GET", "/health", 200)["status"] == "ok"
    product = call(stack, "POST", "/products", 201, token,
                   {"name": "Mug", "price_cents": 1200, "currency": "EUR", "stock": 3})
    assert call(stack, "GET", "/products/{product_id}", 200, product_id=product["id"])["name"] == "Mug"


def test_an_uploaded_photo_becomes_ready_through_pillow_of_the_layer(stack: Stack) -> None:
    token = stack.token("artifact-photographer")
    product = call(stack, "POST", "/products", 201, token,
                   {"name": "Lamp", "price_cents": 4500, "currency": "EUR", "stock": 1})
    photo = jpeg((1200, 900))
    ticket = call(stack, "POST", "/products/{product_id}/images", 201, token,
                  {"content_type": "image/jpeg", "size_bytes": len(photo)}, product_id=product["id"])
    upload(ticket["upload"], photo, "image/jpeg")
    uploads = stack.queue("IMAGE_UPLOADS_QUEUE")

    consume(stack, "process_images", uploads, uploads.receive(1, skip=lambda m: "s3:TestEvent" in m["Body"]))

    (image,) = call(stack, "GET", "/products/{product_id}", 200, product_id=product["id"])["images"]
    assert (image["status"], image["width"], image["height"]) == ("ready", 1200, 900)


def test_an_order_is_reserved_by_the_orders_consumer_which_starts_its_saga(stack: Stack) -> None:
    seller, buyer = stack.token("artifact-seller"), stack.token("artifact-buyer")
    product = call(stack, "POST", "/products", 201, seller,
                   {"name": "Cup", "price_cents": 800, "currency": "EUR", "stock": 2})
    placed = call(stack, "POST", "/orders", 202, buyer,
                  {"product_id": product["id"], "quantity": 1, "payment_method": "pm_card_visa"})
    orders = stack.queue("ORDERS_QUEUE")

    consume(stack, "consume_orders", orders, orders.receive(1))

    order = call(stack, "GET", "/orders/{order_id}", 200, buyer, order_id=placed["order_id"])
    assert (order["status"], order["amount_cents"]) == ("reserved", 800)
    sfn = stack.client("stepfunctions")
    machine = stack.provisioned["OrderSagaStateMachine"].ref
    assert [e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]] == [placed["order_id"]]


def test_an_import_is_dispatched_into_chunks_and_imported(stack: Stack) -> None:
    token = stack.token("artifact-importer")
    job_id, notification = start_import(stack, token, rows=3)
    chunks = stack.queue("IMPORT_CHUNKS_QUEUE")

    consume(stack, "dispatch_import", stack.queue("IMPORT_UPLOADS_QUEUE"), [notification])
    consume(stack, "import_chunk", chunks, chunks.receive(1))

    job = call(stack, "GET", "/imports/{job_id}", 200, token, job_id=job_id)
    assert (job["status"], job["rows_imported"]) == ("completed", 3), job


def test_the_dead_letter_consumers_fail_the_job_of_a_message_that_failed_every_retry(stack: Stack) -> None:
    token = stack.token("artifact-unlucky")
    upload_failed, notification = start_import(stack, token, rows=2)
    consume(stack, "dispatch_import_dead_letter", stack.queue("IMPORT_UPLOADS_QUEUE"), [notification])
    chunk_failed, notification = start_import(stack, token, rows=2)
    consume(stack, "dispatch_import", stack.queue("IMPORT_UPLOADS_QUEUE"), [notification])
    chunks = stack.queue("IMPORT_CHUNKS_QUEUE")

    consume(stack, "import_chunk_dead_letter", chunks, chunks.receive(1))

    for job_id in (upload_failed, chunk_failed):
        assert call(stack, "GET", "/imports/{job_id}", 200, token, job_id=job_id)["status"] == "failed"


def test_the_hourly_cleanup_runs_on_its_schedules_event(stack: Stack) -> None:
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "2026-12-01T10:00:00Z", "region": REGION,
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/storefront-dev-cleanup"], "detail": {}}

    report = stack.functions["cleanup"].invoke(event)

    assert isinstance(report, dict) and report, report


def test_every_module_the_functions_loaded_is_in_the_shipped_layer(stack: Stack, artifact: Artifact) -> None:
    """Last: by now every function has run its events. Where the run used this machine's layer, each
    file it loaded from there must be in the arm64 layer (an extension module by the same name)."""
    target = PLATFORMS[artifact.architecture].machine
    host = PLATFORMS[HOST_ARCHITECTURE].machine
    loaded = {f for function in stack.functions.values() for f in function.loaded_files()}
    from_layer = sorted(Path(f).relative_to(artifact.run_layer).as_posix()
                        for f in loaded if Path(f).is_relative_to(artifact.run_layer))
    shipped = {p.relative_to(artifact.layer).as_posix() for p in artifact.layer.rglob("*") if p.is_file()}

    assert "PIL/Image.py" in from_layer and "pydantic_core/__init__.py" in from_layer
    assert not [f for f in loaded if "site-packages" in f], "a module came from outside the package"
    missing = [f for f in from_layer if f.replace(f"-{host}-linux-gnu", f"-{target}-linux-gnu") not in shipped]
    assert missing == []
    dists = {p.name for p in artifact.run_layer.glob("*.dist-info")}
    assert dists == {p.name for p in artifact.layer.glob("*.dist-info")}


def test_every_module_the_functions_loaded_has_bytecode_lambda_will_use_as_it_is(
        stack: Stack, artifact: Artifact) -> None:
    """/var/task and /opt are read-only on Lambda: a module without bytecode, or with bytecode checked
    against the source's time (which unzipping changes), is compiled again at every cold start."""
    roots = (artifact.task, artifact.run_layer)
    loaded = {Path(f) for function in stack.functions.values() for f in function.loaded_files()
              if f.endswith(".py") and any(Path(f).is_relative_to(root) for root in roots)}
    compiled_anew = []
    for source in sorted(loaded):
        cached = Path(importlib.util.cache_from_source(str(source)))
        # PEP 552: flags 0b01 = hash-based bytecode whose source is never checked.
        if not cached.exists() or int.from_bytes(cached.read_bytes()[4:8], "little") != 0b01:
            compiled_anew.append(str(source))

    assert len(loaded) > 300
    assert compiled_anew == []
