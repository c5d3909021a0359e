"""Shared test plumbing: the anyio backend, paths to the real peers, and a bridge run as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx2
import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_BIN = ROOT / "tests" / "node_modules" / ".bin"
FIXTURES = ROOT / "tests" / "fixtures"
ECHO_SERVER = [sys.executable, str(FIXTURES / "servers" / "echo_stdio.py")]
BRIDGE = [sys.executable, "-m", "bridge"]

READY_TIMEOUT = 30.0
"""Seconds a bridge gets to turn ready; npx-free node servers start in about half a second here."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def node_bin(name: str) -> str:
    path = NODE_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `npm ci --prefix tests` (the README's test command does).")
    return str(path)


STOP_TIMEOUT = 15.0
"""Seconds a server under test has to drain and exit after SIGTERM before it is killed."""


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class RunningBridge:
    url: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes] | None = None
    """The process's stderr: a file, not a pipe, so a chatty process never blocks on a pipe nobody reads."""

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"

    def ready(self) -> bool:
        try:
            return httpx2.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx2.TransportError:
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise AssertionError(f"bridge exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"bridge not ready within {timeout} s")
            time.sleep(0.05)

    def log(self) -> str:
        assert self.log_file is not None, "this process logs elsewhere"
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")


@contextlib.contextmanager
def run_bridge(
    *args: str, env: dict[str, str] | None = None, wait: bool = True, mode: str = "stdio"
) -> Iterator[RunningBridge]:
    """Run `python -m bridge MODE ARGS` (stdio or openapi) on a free loopback port; SIGTERM it on exit."""
    with run_server(lambda port: [*BRIDGE, mode, "--port", str(port), *args], env=env, wait=wait) as running:
        yield running


def wait_http(url: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll until `url` answers HTTP at all (any status): for servers without a /readyz."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            assert time.monotonic() < deadline, f"nothing answers at {url} after {timeout} s"
            time.sleep(0.05)


@contextlib.contextmanager
def run_server(
    command: Callable[[int], list[str]], *, env: dict[str, str] | None = None, wait: bool = True
) -> Iterator[RunningBridge]:
    """Run `command(port)` (a bridge or an aggregator) on a free loopback port; SIGTERM it on exit."""
    port = free_port()
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(command(port), stderr=log_file, env={**os.environ, **(env or {})}, cwd=ROOT)
        bridge = RunningBridge(f"http://127.0.0.1:{port}", process, log_file)
        try:
            if wait:
                bridge.wait_ready()
            yield bridge
        finally:
            stop_process(process)
