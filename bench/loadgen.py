"""The load generator: MCP sessions making verified `tools/call echo` calls back to back over HTTP.

It runs in a process of its own (`bridge_bench.py --role load --config JSON`, on uvloop), so its CPU is its own and
shows in the report. The config names the HTTP client, the URL, the session count, the window's length and the
processes whose CPU use to read during the window (name -> pid). It prints one JSON object: calls/s, latency
percentiles, CPU shares, failures.

Every session is a separate MCP client: its own keep-alive connection, its own `initialize` and `Mcp-Session-Id`,
then calls back to back. Calls completing inside the window (after a warm-up) are counted; each session is bounded
in time and count, and a watchdog turns a call older than CALL_TIMEOUT into a failure. Every reply is verified:
HTTP 200, JSON-RPC id, echoed text = the payload that session sent for that call (unique per session and call).

Two clients: aiohttp (what a typical Python client costs, about 150 us of CPU per call on a small VM, enough to make
it the bottleneck on 2 cores) and `raw`, a keep-alive client written against the transport and httptools (about a
fifth of that), which shows what the server under load sustains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import urlsplit

import orjson
from bench_common import (
    ACCEPT,
    CALL_TIMEOUT,
    FAILURE_SAMPLES,
    INITIALIZE,
    INITIALIZED,
    MAX_CALLS_PER_SESSION,
    PROTOCOL_VERSION,
    WARMUP_SECONDS,
    call_body,
    check_reply,
    cpu_seconds,
    latency_summary,
    machine_cpu_seconds,
)

MAX_FAILURES_PER_SESSION: Final = 20
"""A session that failed this often stops early; its failures are all reported."""
WATCHDOG_INTERVAL: Final = 0.5
"""Seconds between the load generator's checks for calls older than CALL_TIMEOUT."""


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
CLIENTS: Final[dict[str, type[AiohttpClient] | type[RawClient]]] = {"raw": RawClient, "aiohttp": AiohttpClient}


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
