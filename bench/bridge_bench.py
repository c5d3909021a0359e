"""Benchmark of the stdio bridge (`plexus-bridge stdio`) with the trivial echo server behind it.

What is measured, and why:

1. Latency of `tools/call echo` at one session, p50/p99: through the bridge (HTTP client -> bridge -> stdio child and
   back) and against the same echo server driven directly over its stdin/stdout. The difference is what the bridge
   (plus HTTP) costs per call. The same HTTP client against a do-nothing HTTP server gives the client's own share.
2. Throughput (calls/s) through the bridge at 1, 16 and 64 concurrent sessions. Every session is a separate MCP
   client: its own keep-alive connection, its own `initialize` and `Mcp-Session-Id`, then calls back to back. Calls
   completing inside a fixed window (after a short warm-up) are counted; each session is bounded in time and count.
3. Cold start: time from spawning `plexus-bridge` to `/readyz` 200 and to the first successful `tools/call`, next to
   the echo server's own start (spawn to `initialize` answered over stdio), so the bridge's share is visible.
4. Peak RSS (`VmHWM`) of the bridge process alone (not its child) after the load.
5. The load generator's ceiling: the same generator against a trivial uvicorn+httptools server that answers every
   call instantly (echoing the payload, so replies are verified the same way). If the bridge number is well below
   this, the generator is not the bottleneck. CPU use of the generator, the bridge, its child and everything else
   on the machine during each window is read from `os.times`, `/proc/PID/stat` and `/proc/stat`, to show which
   process is CPU-bound and whether a neighbour disturbed the run.

The generator runs every point twice, with two HTTP clients: aiohttp (what a typical Python client costs, about
150 us of CPU per call on a small VM, enough to make it the bottleneck on 2 cores) and a lean keep-alive client
written against the transport and httptools (about a fifth of that), which shows what the bridge itself sustains.

Every reply is verified (HTTP 200, JSON-RPC id, echoed text = the payload that session sent for that call, which is
unique per session and call). Any failure is reported and makes the script exit non-zero.

The generator runs in its own process (this script, re-invoked with a hidden `--role`) on uvloop; the bridge and the
trivial server run in their own processes. Everything binds to 127.0.0.1 on free ports, and every subprocess is
stopped at the end, also on Ctrl-C or an error.

Usage: python bench/bridge_bench.py [--seconds N] [--out FILE] [--sessions 1,16,64] [--clients aiohttp,raw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final, cast
from urllib.parse import urlsplit

import orjson

HOST: Final = "127.0.0.1"
REPO: Final = Path(__file__).resolve().parent.parent
ECHO_SERVER: Final = REPO / "tests" / "fixtures" / "servers" / "echo_stdio.py"
DEFAULT_OUT: Final = REPO / "bench" / "results" / "bridge.json"
BRIDGE_EXE: Final = Path(sys.executable).parent / "plexus-bridge"

DEFAULT_SECONDS: Final = 5.0
"""Length of each measured window (one per throughput point and for the direct stdio latency)."""
DEFAULT_SESSIONS: Final = (1, 16, 64)
LATENCY_SESSIONS: Final = 1
"""The latency comparison is the one-session point; it is always run."""
CEILING_SESSIONS: Final = (1, 16)
"""Session counts at which the generator is also run against the trivial server."""
WARMUP_SECONDS: Final = 0.5
"""Calls made before the window starts (connections, caches, the JIT-less interpreter's first passes): not counted."""
MAX_CALLS_PER_SESSION: Final = 500_000
"""Count bound of one session in one window, next to the time bound (a broken fast path cannot run forever)."""
MAX_FAILURES_PER_SESSION: Final = 20
"""A session that failed this often stops early; its failures are all reported."""
CALL_TIMEOUT: Final = 10.0
"""Seconds one HTTP call may take before it counts as a failure (a hang becomes a failure, not a stuck benchmark)."""
WATCHDOG_INTERVAL: Final = 0.5
"""Seconds between the load generator's checks for calls older than CALL_TIMEOUT."""
FAILURE_SAMPLES: Final = 5
"""Failures kept verbatim per run for the report."""
COLD_START_RUNS: Final = 3
"""Bridge cold starts measured; the median is reported."""
CHILD_START_RUNS: Final = 5
"""Echo-server-alone starts measured; the median is reported."""
READY_TIMEOUT: Final = 30.0
"""Seconds a spawned bridge or trivial server has to become ready before the benchmark fails."""
READY_POLL_INTERVAL: Final = 0.002
"""Seconds between `/readyz` polls during a cold start (bounds the cold-start error from above)."""
STOP_TIMEOUT: Final = 10.0
"""Seconds a subprocess has to exit after SIGTERM before it is killed."""
WORKER_SLACK: Final = 30.0
"""Seconds a load-generator process may run past its planned end before it is killed as hung."""
PROTOCOL_VERSION: Final = "2025-11-25"
MIB: Final = 1024 * 1024
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

TARGET_CALLS_PER_S_16: Final = 8000.0
TARGET_P50_MS_1: Final = 0.35
TARGET_RSS_MB: Final = 80.0
TARGET_READY_OVER_CHILD_MS: Final = 600.0

ACCEPT: Final = "application/json, text/event-stream"
INITIALIZE: Final[dict[str, Any]] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "plexus-bridge-bench", "version": "1"},
    },
}
INITIALIZED: Final = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def call_body(request_id: int, message: str) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": message}},
        }
    )


def check_reply(body: bytes, request_id: int, message: str) -> str | None:
    """None when `body` is the echo reply to this call, else what is wrong with it."""
    try:
        reply = orjson.loads(body)
        if "error" in reply:
            return f"JSON-RPC error {reply['error'].get('code')}: {reply['error'].get('message')}"
        if reply["id"] != request_id:
            return f"id {reply['id']!r} != {request_id!r}"
        text = reply["result"]["content"][0]["text"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"malformed reply ({type(exc).__name__}: {exc}): {body[:200]!r}"
    if text != message:
        return f"echoed {text!r}, sent {message!r}"
    return None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    return {
        "p50_ms": percentile(ordered, 0.50) * 1e3,
        "p90_ms": percentile(ordered, 0.90) * 1e3,
        "p99_ms": percentile(ordered, 0.99) * 1e3,
        "max_ms": (ordered[-1] if ordered else math.nan) * 1e3,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (not its children), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy (all CPUs) and stolen by the hypervisor, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------------------------------
# Load generator (runs in its own process: `--role load`)
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class SessionResult:
    done_at: array[float] = field(default_factory=lambda: array("d"))
    latency: array[float] = field(default_factory=lambda: array("d"))
    calls: int = 0
    failures: int = 0
    samples: list[str] = field(default_factory=list)
    capped_at: float | None = None
    """When the session stopped because it reached MAX_CALLS_PER_SESSION (the window must end there)."""

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.samples) < FAILURE_SAMPLES:
            self.samples.append(what)


@dataclass
class Window:
    """Shared by one generator's sessions: setup counting, then the start signal and the end of the window."""

    sessions: int
    set_up: int = 0
    all_set_up: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)
    end: float = math.inf

    def session_set_up(self) -> None:
        self.set_up += 1
        if self.set_up == self.sessions:
            self.all_set_up.set()


class AiohttpClient:
    """An aiohttp client session with a keep-alive connection of its own: what a typical Python client costs."""

    def __init__(self, url: str) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self.errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
        self.url = url
        self.headers = {"Content-Type": "application/json", "Accept": ACCEPT}
        self.pending_since: float | None = None
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    def use_session(self, session_id: str) -> None:
        self.headers = {**self.headers, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": PROTOCOL_VERSION}

    async def post(self, body: bytes) -> tuple[int, bytes, str | None]:
        """Status, body and Mcp-Session-Id header of the reply."""
        async with self._session.post(self.url, data=body, headers=self.headers) as resp:
            return resp.status, await resp.read(), resp.headers.get("Mcp-Session-Id")

    async def delete(self) -> None:
        async with self._session.delete(self.url, headers=self.headers) as resp:
            await resp.read()

    def abort(self) -> None:
        """Nothing to do: aiohttp enforces CALL_TIMEOUT itself."""

    async def close(self) -> None:
        await self._session.close()


class _RawConnection(asyncio.Protocol):
    """One keep-alive connection of `RawClient`; httptools (the parser uvicorn uses) parses the replies."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, str | None]] | None = None
        self.body: list[bytes] = []
        self.session_id: str | None = None

    def fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport does not subclass it

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a malformed reply: fail the call and drop the connection
            self.fail(ConnectionError(f"bad HTTP reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"mcp-session-id":
            self.session_id = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        reply = (self.parser.get_status_code(), b"".join(self.body), self.session_id)
        self.body, self.session_id = [], None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(reply)
        if not self.parser.should_keep_alive() and self.transport is not None:
            self.transport.close()
            self.transport = None


class RawClient:
    """A lean HTTP/1.1 keep-alive client: prebuilt request heads written straight to the transport.

    It costs a fraction of aiohttp per call, so it shows what the bridge does when the generator is cheap.
    """

    errors: Final = (ConnectionError, TimeoutError, OSError)

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self._host, self._port = parts.hostname, parts.port
        self._head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: {ACCEPT}\r\n"
        ).encode()
        self._delete_head = f"DELETE {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
        self._session_headers = b""
        self._conn: _RawConnection | None = None
        self.pending_since: float | None = None

    def use_session(self, session_id: str) -> None:
        self._session_headers = (
            f"Mcp-Session-Id: {session_id}\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n"
        ).encode()

    async def _send(self, data: bytes) -> tuple[int, bytes, str | None]:
        conn = self._conn
        if conn is None or conn.transport is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_RawConnection, self._host, self._port)
            self._conn = conn
        assert conn.transport is not None
        waiter: asyncio.Future[tuple[int, bytes, str | None]] = asyncio.get_running_loop().create_future()
        conn.waiter = waiter
        self.pending_since = time.perf_counter()
        conn.transport.write(data)
        try:
            return await waiter
        finally:
            conn.waiter = self.pending_since = None

    async def post(self, body: bytes) -> tuple[int, bytes, str | None]:
        """Status, body and Mcp-Session-Id header of the reply."""
        return await self._send(
            self._head + self._session_headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    async def delete(self) -> None:
        await self._send(self._delete_head + self._session_headers + b"Content-Length: 0\r\n\r\n")

    def abort(self) -> None:
        """Fail the call in flight (the watchdog calls this after CALL_TIMEOUT); the next call reconnects."""
        if self._conn is not None:
            self._conn.fail(TimeoutError(f"no reply within {CALL_TIMEOUT} s"))
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None


Client = AiohttpClient | RawClient
CLIENTS: Final[dict[str, type[AiohttpClient] | type[RawClient]]] = {"aiohttp": AiohttpClient, "raw": RawClient}


async def load_session(index: int, client: Client, nonce: str, window: Window, result: SessionResult) -> None:
    """One MCP client: own connection, initialize, then echo calls back to back until the window ends."""
    try:
        try:
            status, body, session_id = await client.post(orjson.dumps(INITIALIZE))
            if status != 200 or session_id is None:
                result.fail(f"initialize: HTTP {status}, session id {session_id!r}: {body[:200]!r}")
                return
            client.use_session(session_id)
            status, body, _ = await client.post(INITIALIZED)
            if status != 202:
                result.fail(f"notifications/initialized: HTTP {status}: {body[:200]!r}")
                return
        except client.errors as exc:
            result.fail(f"session setup: {type(exc).__name__}: {exc}")
            return
        finally:
            window.session_set_up()
        await window.go.wait()
        end = window.end
        clock = time.perf_counter
        post = client.post
        request_id = 0
        while True:
            sent = clock()
            if sent >= end:
                break
            if request_id >= MAX_CALLS_PER_SESSION:
                result.capped_at = sent
                break
            if result.failures >= MAX_FAILURES_PER_SESSION:
                break
            request_id += 1
            message = f"s{index}-c{request_id}-{nonce}"
            try:
                status, body, _ = await post(call_body(request_id, message))
            except client.errors as exc:
                result.fail(f"session {index} call {request_id}: {type(exc).__name__}: {exc}")
                continue
            done = clock()
            result.calls += 1
            problem = f"HTTP {status}: {body[:200]!r}" if status != 200 else check_reply(body, request_id, message)
            if problem is not None:
                result.fail(f"session {index} call {request_id}: {problem}")
                continue
            result.done_at.append(done)
            result.latency.append(done - sent)
        with contextlib.suppress(*client.errors):
            await client.delete()
    finally:
        await client.close()


async def watchdog(clients: Sequence[Client]) -> None:
    """Fail any call that has waited longer than CALL_TIMEOUT, so a hang shows up as a failure."""
    while True:
        await asyncio.sleep(WATCHDOG_INTERVAL)
        now = time.perf_counter()
        for client in clients:
            if client.pending_since is not None and now - client.pending_since > CALL_TIMEOUT:
                client.abort()


async def run_load(config: dict[str, Any]) -> dict[str, Any]:
    sessions: int = config["sessions"]
    seconds: float = config["seconds"]
    watch: dict[str, int] = config["watch"]
    nonce = secrets.token_hex(4)
    window = Window(sessions)
    results = [SessionResult() for _ in range(sessions)]
    clients = [CLIENTS[config["client"]](config["url"]) for _ in range(sessions)]
    tasks = [asyncio.create_task(load_session(i, clients[i], nonce, window, results[i])) for i in range(sessions)]
    guard = asyncio.create_task(watchdog(clients))
    await window.all_set_up.wait()
    # All sessions are set up: warm up, then the measured window.
    window_start = time.perf_counter() + WARMUP_SECONDS
    window.end = window_start + seconds
    window.go.set()
    await asyncio.sleep(WARMUP_SECONDS)
    cpu_before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    machine_before = machine_cpu_seconds()
    own_before = os.times()
    wall_before = time.perf_counter()
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    wall = time.perf_counter() - wall_before
    own_after = os.times()
    machine_after = machine_cpu_seconds()
    machine, steal = ((after - before) / wall for after, before in zip(machine_after, machine_before, strict=True))
    cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / wall for name, pid in watch.items()}
    cpu["generator"] = (own_after.user + own_after.system - own_before.user - own_before.system) / wall
    cpu["machine"] = machine
    cpu["steal"] = steal
    cpu["others"] = max(0.0, machine - sum(cpu[name] for name in (*watch, "generator")))
    await asyncio.gather(*tasks)
    guard.cancel()

    window_end = min([window.end, *(r.capped_at for r in results if r.capped_at is not None)])
    latencies: list[float] = []
    for r in results:
        latencies.extend(
            lat for done, lat in zip(r.done_at, r.latency, strict=True) if window_start <= done <= window_end
        )
    return {
        "client": config["client"],
        "sessions": sessions,
        "window_s": window_end - window_start,
        "calls_in_window": len(latencies),
        "calls_per_s": len(latencies) / (window_end - window_start),
        "calls_total": sum(r.calls for r in results),
        **latency_summary(latencies),
        "cpu_cores": cpu,
        "failures": sum(r.failures for r in results),
        "failure_samples": [s for r in results for s in r.samples][:FAILURE_SAMPLES],
        "capped": any(r.capped_at is not None for r in results),
    }


def load_main(config_json: str) -> None:
    import uvloop

    result = uvloop.run(run_load(json.loads(config_json)))
    sys.stdout.write(json.dumps(result) + "\n")


# --------------------------------------------------------------------------------------------------------------------
# Trivial HTTP server for the generator's ceiling (runs in its own process: `--role trivial`)
# --------------------------------------------------------------------------------------------------------------------

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


async def trivial_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """Answers like the bridge would, at once: initialize gets a session id, tools/call echoes its message."""
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    chunks = []
    while True:
        event = await receive()
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            break
    message = orjson.loads(b"".join(chunks))
    if "id" not in message:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = _JSON_HEADERS
    if message.get("method") == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "trivial", "version": "1"},
        }
        headers = [*_JSON_HEADERS, (b"mcp-session-id", secrets.token_hex(16).encode())]
    else:
        result = {"content": [{"type": "text", "text": message["params"]["arguments"]["message"]}]}
    body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def trivial_main(port: int) -> None:
    import uvicorn

    uvicorn.run(
        trivial_app, host=HOST, port=port, loop="uvloop", http="httptools", lifespan="off", access_log=False,
        log_level="warning",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------------------------------


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


def wait_http_ok(port: int, path: str, deadline: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll GET `path` until it answers 200; fail if the process dies or the deadline passes."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before becoming ready")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"process {proc.args!r} not ready on port {port} within {READY_TIMEOUT} s")
        conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
        try:
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(READY_POLL_INTERVAL)


def http_call(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    conn.request("POST", "/mcp", body=body, headers={"Content-Type": "application/json", "Accept": ACCEPT, **headers})
    resp = conn.getresponse()
    return resp.status, resp.getheader("Mcp-Session-Id"), resp.read()


@dataclass
class Bridge:
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def child_pid(self) -> int:
        """The echo server the bridge started (its one direct child)."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        return int(entry.name)
        raise RuntimeError(f"the bridge (pid {self.proc.pid}) has no child process")

    def memory(self) -> dict[str, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")}
        return {"vm_hwm_mb": values["VmHWM"] / 1024, "vm_rss_mb": values["VmRSS"] / 1024}

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        self.log.seek(0)
        return b"".join(self.log.readlines()[-lines:]).decode(errors="replace")


def start_bridge(procs: Processes) -> Bridge:
    port = free_port()
    log = tempfile.TemporaryFile()
    argv = [str(BRIDGE_EXE), "stdio", "--host", HOST, "--port", str(port), "--log-level", "warning", "--"]
    proc = procs.spawn([*argv, sys.executable, str(ECHO_SERVER)], stdout=log, stderr=subprocess.STDOUT)
    return Bridge(proc, port, log)


def measure_cold_start(procs: Processes) -> dict[str, float]:
    """Spawn a bridge; time /readyz 200 and the first verified tools/call (initialize + initialized + call)."""
    spawned = time.perf_counter()
    bridge = start_bridge(procs)
    try:
        wait_http_ok(bridge.port, "/readyz", spawned + READY_TIMEOUT, bridge.proc)
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
        procs.stop(bridge.proc)
        bridge.log.close()


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


def run_generator(
    procs: Processes, client: str, url: str, sessions: int, seconds: float, watch: dict[str, int]
) -> dict[str, Any]:
    """One load-generator process at `sessions` sessions; returns its verified result."""
    config = json.dumps({"client": client, "url": url, "sessions": sessions, "seconds": seconds, "watch": watch})
    argv = [sys.executable, __file__, "--role", "load", "--config", config]
    proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    failed = {"client": client, "sessions": sessions, "failures": 1}
    try:
        out, err = proc.communicate(timeout=seconds + WARMUP_SECONDS + CALL_TIMEOUT + WORKER_SLACK)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        return {**failed, "failure_samples": ["load generator hung (killed)"]}
    procs.stop(proc)
    if err:
        sys.stderr.write(err.decode(errors="replace"))
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {**failed, "failure_samples": [f"load generator exited with {proc.returncode}: {last[0]}"]}
    result: dict[str, Any] = json.loads(out)
    return result


def start_trivial(procs: Processes) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = procs.spawn([sys.executable, __file__, "--role", "trivial", "--port", str(port)])
    wait_http_ok(port, "/", time.perf_counter() + READY_TIMEOUT, proc)
    return proc, port


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run_benchmark(
    procs: Processes, seconds: float, session_counts: Sequence[int], clients: Sequence[str]
) -> dict[str, Any]:
    print(f"cold start: echo server alone x{CHILD_START_RUNS}, bridge x{COLD_START_RUNS} ...", file=sys.stderr)
    child_starts = [measure_child_start(procs) for _ in range(CHILD_START_RUNS)]
    cold = [measure_cold_start(procs) for _ in range(COLD_START_RUNS)]
    child_ms, ready_ms = median(child_starts), median([c["ready_ms"] for c in cold])
    cold_start = {
        "child_initialize_ms": child_ms,
        "bridge_ready_ms": ready_ms,
        "bridge_first_call_ms": median([c["first_call_ms"] for c in cold]),
        "bridge_share_ms": ready_ms - child_ms,
        "runs": {"child_initialize_ms": child_starts, "bridge": cold},
    }

    print(f"direct stdio latency ({seconds:g} s) ...", file=sys.stderr)
    direct = measure_direct_stdio(procs, seconds)

    bridge = start_bridge(procs)
    through_bridge: list[dict[str, Any]] = []
    try:
        wait_http_ok(bridge.port, "/readyz", time.perf_counter() + READY_TIMEOUT, bridge.proc)
        idle_memory = bridge.memory()
        watch = {"bridge": bridge.proc.pid, "child": bridge.child_pid()}
        for client in clients:
            for sessions in session_counts:
                print(f"bridge: {client} client, {sessions} session(s), {seconds:g} s ...", file=sys.stderr)
                through_bridge.append(run_generator(procs, client, bridge.url, sessions, seconds, watch))
                if bridge.proc.poll() is not None:
                    raise RuntimeError(f"the bridge exited with {bridge.proc.returncode}:\n{bridge.log_tail()}")
        memory = {"idle": idle_memory, "after_load": bridge.memory()}
    finally:
        if any(r["failures"] for r in through_bridge):
            print(f"bridge log:\n{bridge.log_tail()}", file=sys.stderr)
        procs.stop(bridge.proc)
        bridge.log.close()

    trivial, port = start_trivial(procs)
    ceiling = []
    try:
        for client in clients:
            for sessions in CEILING_SESSIONS:
                print(f"trivial server: {client} client, {sessions} session(s), {seconds:g} s ...", file=sys.stderr)
                url = f"http://{HOST}:{port}/mcp"
                ceiling.append(run_generator(procs, client, url, sessions, seconds, {"server": trivial.pid}))
    finally:
        procs.stop(trivial)

    return {
        "cold_start": cold_start,
        "direct_stdio": direct,
        "bridge": through_bridge,
        "ceiling": ceiling,
        "bridge_memory": memory,
    }


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _cpu(result: dict[str, Any], name: str) -> str:
    value = result.get("cpu_cores", {}).get(name)
    return "-" if value is None else f"{value * 100:.0f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, two spaces apart, indented by three."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "   "
        + "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]


def render(report: dict[str, Any]) -> str:
    res = report["results"]
    cold, direct, memory = res["cold_start"], res["direct_stdio"], res["bridge_memory"]
    clients: list[str] = report["config"]["clients"]
    bridge_at = {(r["client"], r["sessions"]): r for r in res["bridge"]}
    ceiling_at = {(r["client"], r["sessions"]): r for r in res["ceiling"]}
    lines = [
        f"plexus-bridge stdio benchmark at {report['config']['revision']}: echo server, "
        f"{report['config']['seconds']:g} s windows, {report['machine']['cpus']} CPUs, "
        f"Python {report['machine']['python']}",
        "",
        "1. Latency of tools/call echo, 1 session, back to back",
    ]
    latency_rows = [("direct stdio (blocking pipe client)", direct)]
    for client in clients:
        latency_rows += [
            (f"through the bridge ({client} client)", bridge_at.get((client, LATENCY_SESSIONS), {})),
            (f"trivial HTTP server ({client} client's floor)", ceiling_at.get((client, LATENCY_SESSIONS), {})),
        ]
    lines += table(
        ["", "p50 ms", "p90 ms", "p99 ms", "calls"],
        [
            [
                label,
                *(_fmt(row.get(k), ".3f") for k in ("p50_ms", "p90_ms", "p99_ms")),
                _fmt(row.get("calls_in_window"), "d"),
            ]
            for label, row in latency_rows
        ],
    )
    lines += ["", "2. Throughput (calls completed in the window)"]
    rows = [("bridge", r, "child") for r in res["bridge"]] + [("trivial server", r, "server") for r in res["ceiling"]]
    rows.sort(key=lambda item: clients.index(item[1]["client"]))
    lines += table(
        [
            "",
            "client",
            "sessions",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "gen CPU",
            "bridge CPU",
            "child/server",
            "others",
            "steal",
            "fail",
        ],
        [
            [
                label,
                row["client"],
                str(row["sessions"]),
                _fmt(row.get("calls_per_s"), ".0f"),
                _fmt(row.get("p50_ms"), ".3f"),
                _fmt(row.get("p99_ms"), ".3f"),
                _cpu(row, "generator"),
                _cpu(row, "bridge"),
                _cpu(row, other),
                _cpu(row, "others"),
                _cpu(row, "steal"),
                str(row["failures"]),
            ]
            for label, row, other in rows
        ],
    )
    lines.append(
        "   CPU: share of one core in the window (2 CPUs = 200%); others: all other processes; steal: by the hypervisor"
    )
    hwm: float = memory["after_load"]["vm_hwm_mb"]
    share: float = cold["bridge_share_ms"]
    lines += [
        "",
        f"3. Cold start, ms (median of {COLD_START_RUNS}; echo server alone: of {CHILD_START_RUNS}): echo server alone "
        f"{cold['child_initialize_ms']:.0f}; bridge spawn -> /readyz 200 {cold['bridge_ready_ms']:.0f}, "
        f"-> first tools/call {cold['bridge_first_call_ms']:.0f}; bridge's share {share:.0f}",
        f"4. Bridge process memory: VmHWM after load {hwm:.1f} MB"
        f" (VmRSS idle {memory['idle']['vm_rss_mb']:.1f} MB, after load {memory['after_load']['vm_rss_mb']:.1f} MB)",
        "",
        "Targets (informational; they do not change the exit status)",
    ]

    def verdict(value: float | None, ok: bool, spec: str) -> str:
        return f"{_fmt(value, spec)} {'met' if ok else 'MISSED'}"

    per_client = []
    for client in clients:
        at16: float | None = bridge_at.get((client, 16), {}).get("calls_per_s")
        p50: float | None = bridge_at.get((client, LATENCY_SESSIONS), {}).get("p50_ms")
        per_client.append(
            f"{client}: {verdict(at16, at16 is not None and at16 >= TARGET_CALLS_PER_S_16, '.0f')} calls/s, "
            f"p50 {verdict(p50, p50 is not None and p50 < TARGET_P50_MS_1, '.3f')}"
        )
    lines += [
        f"   calls/s at 16 sessions >= {TARGET_CALLS_PER_S_16:.0f}, p50 at 1 session < {TARGET_P50_MS_1} ms: "
        + "; ".join(per_client),
        f"   VmHWM < {TARGET_RSS_MB:.0f} MB: {verdict(hwm, hwm < TARGET_RSS_MB, '.1f')}; "
        f"bridge's start share < {TARGET_READY_OVER_CHILD_MS:.0f} ms: "
        f"{verdict(share, share < TARGET_READY_OVER_CHILD_MS, '.0f')}",
    ]
    lines.append(f"Verification failures: {report['failures']}")
    for section in (res["bridge"], res["ceiling"], [direct]):
        for row in section:
            lines += [f"   {sample}" for sample in row.get("failure_samples", [])]
    return "\n".join(lines)


def git_revision() -> str | None:
    """The repository's commit (with "+dirty" when it has changes), so results name the code they measured."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.decode().strip() + ("+dirty" if status.stdout.strip() else "")


def parse_clients(raw: str) -> list[str]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names or any(name not in CLIENTS for name in names):
        raise argparse.ArgumentTypeError(f"--clients takes a comma-separated subset of {', '.join(CLIENTS)}")
    return list(dict.fromkeys(names))


def parse_sessions(raw: str) -> list[int]:
    counts = sorted({int(part) for part in raw.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("--sessions takes positive integers, e.g. 1,16,64")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured window per point")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--sessions",
        type=parse_sessions,
        default=list(DEFAULT_SESSIONS),
        help="comma-separated concurrent session counts through the bridge (1 is always added: the latency point)",
    )
    parser.add_argument(
        "--clients",
        type=parse_clients,
        default=list(CLIENTS),
        help="HTTP clients the load generator runs with, each through every point: aiohttp (a typical client) "
        "and raw (a lean one, so the generator costs little CPU)",
    )
    parser.add_argument("--role", choices=["load", "trivial"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP end the run with KeyboardInterrupt, so the cleanup below runs.

    SIGINT is set explicitly too: a shell starting the script in the background leaves it ignored.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "load":
        load_main(args.config)
        return 0
    if args.role == "trivial":
        trivial_main(args.port)
        return 0
    if args.seconds <= 0:
        raise SystemExit("--seconds must be positive")
    sessions = sorted({LATENCY_SESSIONS, *args.sessions})
    loadavg_before = os.getloadavg()
    revision = git_revision()
    procs = Processes()
    try:
        with exit_on_signals():
            results = run_benchmark(procs, args.seconds, sessions, args.clients)
    except KeyboardInterrupt:
        print("interrupted: stopping subprocesses", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    failures = results["direct_stdio"]["failures"] + sum(
        r["failures"] for r in (*results["bridge"], *results["ceiling"])
    )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": loadavg_before,
        },
        "config": {
            "revision": revision,
            "seconds": args.seconds,
            "sessions": sessions,
            "clients": args.clients,
            "warmup_s": WARMUP_SECONDS,
        },
        "results": results,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
