"""For benchmarks: the running local stack (.devstack/endpoints.json), or one started for the run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_stack() -> Iterator[dict]:
    """Yield endpoints (plus "env": the environment that reaches this stack's endpoints.json)."""
    state_dir = Path(os.environ.get("DEVSTACK_DIR", ROOT / ".devstack"))
    existing = state_dir / "endpoints.json"
    if existing.exists():
        print(f"using the running stack ({existing})", file=sys.stderr)
        yield {**json.loads(existing.read_text()), "env": {**os.environ, "DEVSTACK_DIR": str(state_dir)}}
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "API_PORT": str(_free_port()), "AWS_PORT": str(_free_port()),
               "TRACE_PORT": str(_free_port()), "DEVSTACK_DIR": tmp}
        env.pop("AWS_ENDPOINT_URL", None)
        log = open(Path(tmp) / "stack.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "devstack", "run"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        print("starting a local stack for this run...", file=sys.stderr)
        try:
            endpoints_file = Path(tmp) / "endpoints.json"
            deadline = time.monotonic() + 90
            while not endpoints_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the stack did not start:\n{(Path(tmp) / 'stack.log').read_text()[-3000:]}")
                time.sleep(0.1)
            yield {**json.loads(endpoints_file.read_text()), "env": env}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            log.close()


def token(endpoints: dict, user: str) -> str:
    done = subprocess.run([sys.executable, "-m", "devstack", "token", user], cwd=ROOT, env=endpoints["env"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()
