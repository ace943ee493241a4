"""The real local stack (`python -m devstack run`) in a subprocess on free ports, as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningStack:
    def __init__(self, process: subprocess.Popen, state_dir: Path, endpoints: dict, log: Path) -> None:
        self.process = process
        self.state_dir = state_dir
        self.endpoints = endpoints
        self.log = log

    @property
    def env(self) -> dict[str, str]:
        """The environment a user's shell has: where the stack writes endpoints.json."""
        return {**os.environ, "DEVSTACK_DIR": str(self.state_dir)}

    def devstack(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "devstack", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def token(self, user: str) -> str:
        done = self.devstack("token", user)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def aws(self, *args: str) -> dict:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": self.endpoints["region"]}
        env.pop("AWS_ENDPOINT_URL", None)
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "aws"), "--endpoint-url", self.endpoints["aws_endpoint"],
                               "--output", "json", *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout or "{}")


def start_stack(tmp_path: Path) -> RunningStack:
    state_dir = tmp_path / "devstack"
    ports = {"API_PORT": _free_port(), "AWS_PORT": _free_port(), "TRACE_PORT": _free_port()}
    log = tmp_path / "stack.log"
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DEVSTACK_DIR": str(state_dir)}
    for leaked in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(leaked, None)
    process = subprocess.Popen([sys.executable, "-m", "devstack", "run"], cwd=ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    endpoints_file = state_dir / "endpoints.json"
    deadline = time.monotonic() + 90
    while not endpoints_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the stack did not come up:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    return RunningStack(process, state_dir, json.loads(endpoints_file.read_text()), log)


def stop_stack(stack: RunningStack) -> int:
    stack.process.send_signal(signal.SIGTERM)
    try:
        return stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        raise AssertionError(f"the stack did not stop on SIGTERM:\n{stack.log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    stop_stack(running)
