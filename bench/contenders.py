"""The processes the benchmark starts and measures without the load generator.

Servers under load, each in its own process on a free port of 127.0.0.1: `plexus-bridge stdio` and the bare
forwarder (`bare_forwarder.py`), both in front of the echo server, and the trivial HTTP server (the generator's
ceiling). Measured here: the cold start of the bridge, the echo server's own start, and the echo server's latency
driven directly over stdin/stdout. `Processes` keeps every subprocess so that all of them are stopped however the
run ends.
"""

from __future__ import annotations

import contextlib
import http.client
import secrets
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson
from bench_common import (
    ACCEPT,
    BENCH,
    ECHO_SERVER,
    FAILURE_SAMPLES,
    HOST,
    INITIALIZE,
    INITIALIZED,
    MAX_CALLS_PER_SESSION,
    PROTOCOL_VERSION,
    WARMUP_SECONDS,
    call_body,
    check_reply,
    cpu_seconds,
    free_port,
    latency_summary,
)

BRIDGE_EXE: Final = Path(sys.executable).parent / "plexus-bridge"
BARE_FORWARDER: Final = BENCH / "bare_forwarder.py"
BENCH_SCRIPT: Final = BENCH / "bridge_bench.py"
"""Runs the trivial server and the load generator as roles (`--role trivial`, `--role load`)."""

READY_TIMEOUT: Final = 30.0
"""Seconds a spawned server has to become ready before the benchmark fails."""
READY_POLL_INTERVAL: Final = 0.002
"""Seconds between readiness polls (bounds the cold-start error from above)."""
STOP_TIMEOUT: Final = 10.0
"""Seconds a subprocess has to exit after SIGTERM before it is killed."""
QUIET_SLICE: Final = 0.1
"""Seconds of one CPU reading while waiting for a ready server to go quiet."""
QUIET_SLICES: Final = 3
"""Consecutive readings below QUIET_CPU that count as quiet."""
QUIET_CPU: Final = 0.05
"""Share of a core below which a server counts as idle (the bridge finishes loading in the background after ready)."""
QUIET_TIMEOUT: Final = 30.0
"""Seconds a ready server has to go quiet before the benchmark fails."""
PING: Final = b'{"jsonrpc":"2.0","id":"ready","method":"ping"}'
"""The bare forwarder's readiness probe (it has no /readyz): answered by its child, so the child is up too."""


class Processes:
    """Every subprocess the benchmark started, so all of them are stopped however it ends."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # A session of its own: Ctrl-C reaches only this script, which then stops everything in order.
        proc = subprocess.Popen(list(argv), start_new_session=True, **kwargs)
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


@dataclass
class Server:
    """An HTTP server under load in a process of its own, its output in a temporary file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]
    ready_request: tuple[str, str, bytes | None]
    """Method, path and body of the request that answers 200 once the server is ready."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def wait_ready(self, deadline: float) -> None:
        """Poll the readiness request until it answers 200; fail if the process dies or the deadline passes."""
        method, path, body = self.ready_request
        headers = {"Content-Type": "application/json", "Accept": ACCEPT} if body is not None else {}
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before becoming ready:\n{self.log_tail()}"
                )
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name} not ready on port {self.port} within {READY_TIMEOUT} s")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
            try:
                conn.request(method, path, body=body, headers=headers)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(READY_POLL_INTERVAL)

    def wait_quiet(self) -> float:
        """Wait until the process has used almost no CPU for a while; return the seconds waited.

        The bridge answers /readyz before it has finished loading in the background; measuring then would charge
        that work to the first window.
        """
        started = time.perf_counter()
        quiet = 0
        while quiet < QUIET_SLICES:
            self.check_alive()
            if time.perf_counter() - started > QUIET_TIMEOUT:
                raise RuntimeError(f"{self.name} still busy {QUIET_TIMEOUT} s after becoming ready")
            before, at = cpu_seconds(self.proc.pid), time.perf_counter()
            time.sleep(QUIET_SLICE)
            share = (cpu_seconds(self.proc.pid) - before) / (time.perf_counter() - at)
            quiet = quiet + 1 if share < QUIET_CPU else 0
        return time.perf_counter() - started

    def child_pid(self) -> int:
        """The echo server this server started (its one direct child)."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        return int(entry.name)
        raise RuntimeError(f"{self.name} (pid {self.proc.pid}) has no child process")

    def memory(self) -> dict[str, float]:
        """Peak and current resident memory of the server process alone (not its child)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")}
        return {"vm_hwm_mb": values["VmHWM"] / 1024, "vm_rss_mb": values["VmRSS"] / 1024}

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        self.log.seek(0)
        return b"".join(self.log.readlines()[-lines:]).decode(errors="replace")

    def stop(self, procs: Processes) -> None:
        procs.stop(self.proc)
        self.log.close()


def _spawn_server(
    procs: Processes, name: str, argv: Sequence[str], ready_request: tuple[str, str, bytes | None]
) -> Server:
    port = free_port()
    log = tempfile.TemporaryFile()
    argv = [part.replace("{port}", str(port)) for part in argv]
    proc = procs.spawn(argv, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, proc, port, log, ready_request)


def start_bridge(procs: Processes) -> Server:
    """`plexus-bridge stdio` in front of the echo server; ready when /readyz answers 200 (not waited for here)."""
    argv = [str(BRIDGE_EXE), "stdio", "--host", HOST, "--port", "{port}", "--log-level", "warning", "--"]
    return _spawn_server(procs, "the bridge", [*argv, sys.executable, str(ECHO_SERVER)], ("GET", "/readyz", None))


def start_bare(procs: Processes) -> Server:
    """The bare forwarder in front of the echo server; ready when a ping through it is answered."""
    argv = [sys.executable, str(BARE_FORWARDER), "{port}", "--", sys.executable, str(ECHO_SERVER)]
    return _spawn_server(procs, "the bare forwarder", argv, ("POST", "/mcp", PING))


def start_trivial(procs: Processes) -> Server:
    argv = [sys.executable, str(BENCH_SCRIPT), "--role", "trivial", "--port", "{port}"]
    server = _spawn_server(procs, "the trivial server", argv, ("GET", "/", None))
    server.wait_ready(time.perf_counter() + READY_TIMEOUT)
    return server


def http_call(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    conn.request("POST", "/mcp", body=body, headers={"Content-Type": "application/json", "Accept": ACCEPT, **headers})
    resp = conn.getresponse()
    return resp.status, resp.getheader("Mcp-Session-Id"), resp.read()


def measure_cold_start(procs: Processes) -> dict[str, float]:
    """Spawn a bridge; time /readyz 200 and the first verified tools/call (initialize + initialized + call)."""
    spawned = time.perf_counter()
    bridge = start_bridge(procs)
    try:
        bridge.wait_ready(spawned + READY_TIMEOUT)
        ready = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, bridge.port, timeout=READY_TIMEOUT)
        status, session_id, body = http_call(conn, orjson.dumps(INITIALIZE), {})
        if status != 200 or session_id is None:
            raise RuntimeError(f"cold start: initialize got HTTP {status}: {body[:200]!r}")
        headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": PROTOCOL_VERSION}
        http_call(conn, INITIALIZED, headers)
        status, _, body = http_call(conn, call_body(1, "cold"), headers)
        problem = f"HTTP {status}" if status != 200 else check_reply(body, 1, "cold")
        if problem is not None:
            raise RuntimeError(f"cold start: first tools/call failed: {problem}")
        first_call = time.perf_counter()
        conn.request("DELETE", "/mcp", headers=headers)
        conn.getresponse().read()
        conn.close()
        return {"ready_ms": (ready - spawned) * 1e3, "first_call_ms": (first_call - spawned) * 1e3}
    except Exception:
        print(f"bridge log:\n{bridge.log_tail()}", file=sys.stderr)
        raise
    finally:
        bridge.stop(procs)


class StdioClient:
    """The echo server driven directly: one JSON line out, one JSON line back."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.proc = procs.spawn([sys.executable, str(ECHO_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout

    def round_trip(self, line: bytes) -> bytes:
        self.stdin.write(line)
        self.stdin.flush()
        reply = self.stdout.readline()
        if not reply:
            raise RuntimeError(f"the echo server exited (code {self.proc.poll()})")
        return reply

    def close(self) -> None:
        self.procs.stop(self.proc)


def measure_child_start(procs: Processes) -> float:
    """Milliseconds from spawning the echo server alone to its initialize reply over stdio."""
    spawned = time.perf_counter()
    client = StdioClient(procs)
    try:
        reply = orjson.loads(client.round_trip(orjson.dumps(INITIALIZE) + b"\n"))
        if reply.get("id") != 0 or "result" not in reply:
            raise RuntimeError(f"echo server answered initialize with {reply!r}")
        return (time.perf_counter() - spawned) * 1e3
    finally:
        client.close()


def measure_direct_stdio(procs: Processes, seconds: float) -> dict[str, Any]:
    """Back-to-back echo calls straight over the server's stdin/stdout (blocking I/O, no event loop)."""
    client = StdioClient(procs)
    nonce = secrets.token_hex(4)
    failures: list[str] = []
    failure_count = 0
    latencies: array[float] = array("d")
    try:
        client.round_trip(orjson.dumps(INITIALIZE) + b"\n")
        client.stdin.write(INITIALIZED + b"\n")
        window_start = time.perf_counter() + WARMUP_SECONDS
        end = window_start + seconds
        clock = time.perf_counter
        request_id = 0
        while request_id < MAX_CALLS_PER_SESSION:
            sent = clock()
            if sent >= end:
                break
            request_id += 1
            message = f"direct-c{request_id}-{nonce}"
            reply = client.round_trip(call_body(request_id, message) + b"\n")
            done = clock()
            problem = check_reply(reply, request_id, message)
            if problem is not None:
                failure_count += 1
                if len(failures) < FAILURE_SAMPLES:
                    failures.append(problem)
            elif window_start <= done <= end:
                latencies.append(done - sent)
    finally:
        client.close()
    return {
        "calls_in_window": len(latencies),
        "calls_per_s": len(latencies) / seconds,
        **latency_summary(latencies),
        "failures": failure_count,
        "failure_samples": failures,
    }
