"""Cold start: import the app and serve a first GET /products/{id}, in fresh processes.

Both sides run as Lambda would run them: a fresh interpreter, Lambda's environment variables
(so the X-Ray SDK is in Lambda mode, as on AWS), an API Gateway proxy event handed to the
handler. The baseline is a bare Chalice + boto3 app doing the same consistent GetItem. Rounds
alternate the two so machine noise hits both alike; we report medians and their ratio.
Also prints the AWS calls each API operation makes (counted at botocore's API-call level).

    .venv/bin/python bench/cold_start.py [--rounds 21]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE_APP = '''
import boto3
from chalice import Chalice

app = Chalice(app_name="bare")
_DDB = boto3.client("dynamodb")
TABLE = __import__("os").environ["PRODUCTS_TABLE"]


@app.route("/products/{product_id}")
def get_product(product_id):
    item = _DDB.get_item(TableName=TABLE, Key={"id": {"S": product_id}}, ConsistentRead=True)["Item"]
    return {k: list(v.values())[0] for k, v in item.items()}
'''

# Runs in the child: time from the first line to the response, then the process exits.
CHILD = '''
import time
started = time.perf_counter()
import json, sys
sys.path.insert(0, sys.argv[1])
calls = []
import botocore.client
_original = botocore.client.BaseClient._make_api_call
def _counting(self, operation, params):
    calls.append(operation)
    return _original(self, operation, params)
botocore.client.BaseClient._make_api_call = _counting
from app import app
event = json.loads(sys.argv[2])
class Context:
    function_name = "storefront-dev"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:storefront-dev"
    def get_remaining_time_in_millis(self): return 30000
response = app(event, Context())
assert response["statusCode"] == 200, response
print(json.dumps({"seconds": time.perf_counter() - started, "calls": calls}))
'''


def api_event(method: str, path: str, resource: str, params: dict | None = None) -> dict:
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": {"Host": "bench"},
        "multiValueHeaders": {"Host": ["bench"]}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": params, "stageVariables": None,
        "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": "bench-1",
                           "path": f"/api{path}", "stage": "api", "identity": {"sourceIp": "127.0.0.1"}},
    }


def run_child(app_dir: str, event: dict, env: dict) -> tuple[float, float, list[str]]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, app_dir, json.dumps(event)], env=env,
                         capture_output=True, text=True, cwd=app_dir)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"child failed in {app_dir}:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, result["seconds"], result["calls"]


def operation_calls(env: dict) -> dict[str, int]:
    """AWS calls per API operation of the real app, in this process, through chalice.test.Client."""
    import botocore.client
    from chalice.test import Client

    os.environ.update(env)
    from devstack.tokens import issue_token

    import boto3
    cognito = boto3.client("cognito-idp")
    token = issue_token(cognito, env["USER_POOL"], env["USER_POOL_CLIENT"], "bench-user")
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        calls.append(operation)
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = counting
    from app import app

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"name": "Bench", "price_cents": 100, "currency": "EUR", "stock": 1})
    counts = {}
    with Client(app) as client:
        def measure(name, fn):
            client.http.get("/health")  # warm: the first request builds the container
            calls.clear()
            response = fn()
            counts[name] = (len(calls), response.status_code)
            return response
        created = json.loads(measure("POST /products", lambda: client.http.post("/products", headers=headers, body=body)).body)
        keyed = {**headers, "Idempotency-Key": "bench-key"}
        measure("POST /products with Idempotency-Key", lambda: client.http.post("/products", headers=keyed, body=body))
        measure("POST /products replayed", lambda: client.http.post("/products", headers=keyed, body=body))
        measure("GET /products/{id}", lambda: client.http.get(f"/products/{created['id']}"))
        measure("GET /products", lambda: client.http.get("/products?limit=5"))
        measure("PATCH /products/{id}", lambda: client.http.patch(
            f"/products/{created['id']}", headers={**headers, "If-Match": '"1"'}, body='{"stock": 2}'))
        measure("DELETE /products/{id}", lambda: client.http.delete(f"/products/{created['id']}", headers=headers))
    botocore.client.BaseClient._make_api_call = original
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    from devstack.provision import provision
    from infra.resources import load_template

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        aws_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        os.environ.update(aws_env)
        provisioned = provision(load_template(), endpoint_url=endpoint, stack_name="bench")
        import boto3

        product_id = "01JBENCH0000000000000000AA"
        boto3.client("dynamodb").put_item(TableName=provisioned.env()["PRODUCTS_TABLE"], Item={
            "id": {"S": product_id}, "owner": {"S": "o"}, "catalog": {"S": "all"}, "name": {"S": "Mug"},
            "description": {"S": ""}, "price_cents": {"N": "100"}, "currency": {"S": "EUR"},
            "stock": {"N": "1"}, "version": {"N": "1"},
            "created_at": {"S": "2026-11-23T00:00:00.000000+0000"},
            "updated_at": {"S": "2026-11-23T00:00:00.000000+0000"}})
        pool = provisioned.summary()
        lambda_env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}, **aws_env,
            **provisioned.env(), "STAGE": "dev", "POWERTOOLS_SERVICE_NAME": "storefront", "LOG_LEVEL": "WARNING",
            "COGNITO_JWKS_URL": f"{endpoint}/{pool['user_pool_id']}/.well-known/jwks.json",
            # What Lambda sets: the X-Ray SDK sees a Lambda container with an active trace.
            "LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "storefront-dev",
            "_X_AMZN_TRACE_ID": "Root=1-67000000-000000000000000000000001;Parent=0000000000000001;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "PYTHONDONTWRITEBYTECODE": "1",
        }
        event = api_event("GET", f"/products/{product_id}", "/products/{product_id}", {"product_id": product_id})
        with tempfile.TemporaryDirectory() as bare_dir:
            Path(bare_dir, "app.py").write_text(textwrap.dedent(BASELINE_APP))
            # Compile both once so neither side pays bytecode compilation in the measured rounds.
            run_child(str(ROOT), event, {**lambda_env, "PYTHONDONTWRITEBYTECODE": ""})
            run_child(bare_dir, event, {**lambda_env, "PYTHONDONTWRITEBYTECODE": ""})
            ours_wall, ours_in, base_wall, base_in = [], [], [], []
            ours_calls = base_calls = []
            for _ in range(args.rounds):
                w, i, ours_calls = run_child(str(ROOT), event, lambda_env)
                ours_wall.append(w), ours_in.append(i)
                w, i, base_calls = run_child(bare_dir, event, lambda_env)
                base_wall.append(w), base_in.append(i)
        med = statistics.median
        print(f"cold start, {args.rounds} alternating rounds, medians (fresh interpreter each):")
        print(f"  storefront   process {med(ours_wall) * 1000:7.1f} ms   import+first GET {med(ours_in) * 1000:7.1f} ms   AWS calls {ours_calls}")
        print(f"  bare chalice process {med(base_wall) * 1000:7.1f} ms   import+first GET {med(base_in) * 1000:7.1f} ms   AWS calls {base_calls}")
        print(f"  ratio (process wall time)       {med(ours_wall) / med(base_wall):.2f}x   (goal <= 1.2x)")
        print(f"  ratio (import + first request)  {med(ours_in) / med(base_in):.2f}x")
        print("AWS calls per API operation (warm container):")
        for name, (count, status) in operation_calls({**aws_env, **provisioned.env(), "TRACING": "off",
                                                      "COGNITO_JWKS_URL": lambda_env["COGNITO_JWKS_URL"]}).items():
            print(f"  {name:38s} {count}  (HTTP {status})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
