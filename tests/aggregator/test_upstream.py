"""The upstream client against real servers: the bridge (streamable HTTP and legacy SSE) and server-everything."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import aiohttp
import anyio
import pytest

from aggregator._sse import SSEError, SSEParser
from aggregator.exceptions import UpstreamRequestError, UpstreamUnavailable
from aggregator.upstream import Upstream
from tests.conftest import ECHO_SERVER, RunningBridge, free_port, node_bin, run_bridge

pytestmark = pytest.mark.anyio

CLIENT_INFO = {"name": "plexus-test", "version": "1"}
WAIT = 10.0
"""Seconds any single step may take before the test fails instead of hanging."""

LOOPBACK_PRELOAD = """
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\\d+$/.test(args[0]))) {
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
"""
"""server-everything calls `app.listen(PORT)` (all interfaces, no host option): this preload pins it to loopback."""


CANCELLED_CALL = 'plexus_bridge_requests_total{method="tools/call",outcome="error"} 1.0'
"""How the bridge counts a call its client cancelled with notifications/cancelled before the reply."""


async def metrics(bridge: RunningBridge) -> str:
    async with aiohttp.ClientSession() as http, http.get(bridge.url + "/metrics") as response:
        return await response.text()


@pytest.fixture(scope="module")
def bridge() -> Iterator[RunningBridge]:
    with run_bridge("--", *ECHO_SERVER) as running:
        yield running


@contextlib.asynccontextmanager
async def connected(
    url: str,
    transport: Literal["streamable-http", "sse"] = "streamable-http",
    name: str = "echo",
    capabilities: dict[str, Any] | None = None,
    **callbacks: Any,
) -> AsyncIterator[Upstream]:
    callbacks.setdefault("on_notification", lambda message: None)
    upstream = Upstream(
        name, url, transport=transport, client_info=CLIENT_INFO, capabilities=capabilities or {}, **callbacks
    )
    try:
        with anyio.fail_after(WAIT):
            await upstream.connect(timeout=WAIT)
        yield upstream
    finally:
        with anyio.fail_after(WAIT):
            await upstream.close()
            await upstream.close()  # idempotent


async def echo(upstream: Upstream, text: str) -> str:
    result = await upstream.request("tools/call", {"name": "echo", "arguments": {"message": text}}, timeout=WAIT)
    content: str = result["content"][0]["text"]
    return content


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_lists_and_calls_concurrently(
    bridge: RunningBridge, transport: Literal["streamable-http", "sse"]
) -> None:
    """The handshake, a tools/list and 50 concurrent calls with distinct payloads, each answered with its own."""
    url = bridge.mcp if transport == "streamable-http" else bridge.url + "/sse"
    async with connected(url, transport) as upstream:
        assert upstream.initialize_result is not None
        assert upstream.initialize_result["serverInfo"]["name"] == "echo-stdio"
        assert upstream.initialize_result["protocolVersion"] == "2025-11-25"
        with anyio.fail_after(WAIT):
            tools = (await upstream.request("tools/list", None, timeout=WAIT))["tools"]
            assert {tool["name"] for tool in tools} == {"echo", "pid", "announce"}
            texts = [f"payload {i} " + "x" * i for i in range(50)]
            assert await asyncio.gather(*(echo(upstream, text) for text in texts)) == texts


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_server_notification_reaches_the_callback(
    bridge: RunningBridge, transport: Literal["streamable-http", "sse"]
) -> None:
    """`announce` makes the server send notifications/tools/list_changed; it arrives at on_notification."""
    url = bridge.mcp if transport == "streamable-http" else bridge.url + "/sse"
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def on_notification(message: dict[str, Any]) -> None:
        received.append(message)
        arrived.set()

    async with connected(url, transport, on_notification=on_notification) as upstream:
        with anyio.fail_after(WAIT):
            await upstream.request("tools/call", {"name": "announce", "arguments": {}}, timeout=WAIT)
            await arrived.wait()
    assert received == [{"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}]


async def test_jsonrpc_error_keeps_its_code(bridge: RunningBridge) -> None:
    async with connected(bridge.mcp, name="time") as upstream:
        with anyio.fail_after(WAIT), pytest.raises(UpstreamRequestError) as caught:
            await upstream.request("no/such/method", {}, timeout=WAIT)
    assert caught.value.code == -32601
    assert caught.value.message == "Method not found"
    assert caught.value.target == "time"
    assert "Target 'time' answered error -32601" in str(caught.value)


async def test_timeout_is_unavailable_fast_and_cancelled_upstream() -> None:
    """A server slower than the caller's deadline: UpstreamUnavailable at the deadline, and the bridge gets
    notifications/cancelled (its metrics count the call as failed by that cancel, not as a disconnect).
    """
    with run_bridge("--", *ECHO_SERVER, "--slow-ms", "3000") as slow:
        async with connected(slow.mcp, name="slow") as upstream:
            started = time.monotonic()
            with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable) as caught:
                await upstream.request("tools/call", {"name": "echo", "arguments": {"message": "x"}}, timeout=0.5)
            elapsed = time.monotonic() - started
            with anyio.fail_after(WAIT):
                while CANCELLED_CALL not in await metrics(slow):
                    await asyncio.sleep(0.05)
    assert 0.5 <= elapsed < 1.5
    assert "no reply to tools/call within 0.5 s" in str(caught.value)
    assert caught.value.target == "slow"


async def test_expired_session_is_reinitialized_once(bridge: RunningBridge) -> None:
    """Deleting the session behind the client's back: the next requests (20 at once) open one new session."""
    async with connected(bridge.mcp) as upstream:
        old = upstream._session_id
        assert old
        with anyio.fail_after(WAIT):
            async with (
                aiohttp.ClientSession() as http,
                http.delete(bridge.mcp, headers={"mcp-session-id": old}) as gone,
            ):
                assert gone.status == 200
            texts = [f"after expiry {i}" for i in range(20)]
            assert await asyncio.gather(*(echo(upstream, text) for text in texts)) == texts
            assert upstream._session_id not in (None, old)
            assert upstream._generation == 2  # re-initialized exactly once
            assert await echo(upstream, "again") == "again"


async def test_lost_legacy_stream_is_reopened(bridge: RunningBridge) -> None:
    """The legacy event stream dropping ends the session: the next request opens a new stream and session."""
    async with connected(bridge.url + "/sse", "sse") as upstream:
        old = upstream._post_target
        assert upstream._stream_task is not None
        upstream._stream_task.cancel()  # as if the connection had dropped
        with anyio.fail_after(WAIT):
            texts = [f"after the drop {i}" for i in range(5)]
            assert await asyncio.gather(*(echo(upstream, text) for text in texts)) == texts
        assert upstream._post_target != old
        assert upstream._generation == 2


async def test_dead_target_is_unavailable_and_named() -> None:
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}/mcp"
    with pytest.raises(UpstreamUnavailable) as caught:
        async with connected(url, name="dead"):
            pass
    assert str(caught.value) == f"Target 'dead' at {url}: connection refused"
    assert caught.value.target == "dead"


async def test_request_cancelled_by_the_caller_is_cancelled_upstream() -> None:
    """A cancelled request task ends at once, the bridge gets notifications/cancelled, the upstream stays usable."""
    with run_bridge("--", *ECHO_SERVER, "--slow-ms", "1000") as slow:
        async with connected(slow.mcp) as upstream:
            task = asyncio.create_task(echo(upstream, "slow"))
            await asyncio.sleep(0.2)
            task.cancel()
            with anyio.fail_after(0.5), pytest.raises(asyncio.CancelledError):
                await task
            with anyio.fail_after(WAIT):
                while CANCELLED_CALL not in await metrics(slow):
                    await asyncio.sleep(0.05)
                assert await echo(upstream, "next") == "next"


@pytest.fixture
def everything(tmp_path: Path) -> Iterator[str]:
    """server-everything in streamableHttp mode, pinned to 127.0.0.1; yields its /mcp URL."""
    preload = tmp_path / "loopback.cjs"
    preload.write_text(LOOPBACK_PRELOAD)
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": f"--require {preload}"}
    process = subprocess.Popen(
        [node_bin("mcp-server-everything"), "streamableHttp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("server-everything did not start listening")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=WAIT)


async def test_server_everything_lists_calls_samples_and_reports_progress(everything: str) -> None:
    """SSE replies, a sampling request answered through on_request, progress routed to on_message."""
    sampled: list[dict[str, Any]] = []

    async def on_request(message: dict[str, Any]) -> dict[str, Any]:
        sampled.append(message)
        text = {"type": "text", "text": "sampled!"}
        return {"result": {"role": "assistant", "content": text, "model": "test", "stopReason": "endTurn"}}

    async with connected(everything, name="everything", capabilities={"sampling": {}}, on_request=on_request) as up:
        with anyio.fail_after(WAIT):
            tools = {tool["name"] for tool in (await up.request("tools/list", None, timeout=WAIT))["tools"]}
            assert {"echo", "trigger-sampling-request", "trigger-long-running-operation"} <= tools
            assert await echo(up, "hi") == "Echo: hi"
            result = await up.request(
                "tools/call", {"name": "trigger-sampling-request", "arguments": {"prompt": "p"}}, timeout=WAIT
            )
            assert "sampled!" in result["content"][0]["text"]
            assert sampled and sampled[0]["method"] == "sampling/createMessage"
            progress: list[dict[str, Any]] = []
            params = {
                "name": "trigger-long-running-operation",
                "arguments": {"duration": 0.3, "steps": 3},
                "_meta": {"progressToken": "tok"},
            }
            await up.request("tools/call", params, timeout=WAIT, on_message=progress.append)
            assert [m["params"]["progress"] for m in progress if m["method"] == "notifications/progress"] == [1, 2, 3]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_sse_parser_splits_anywhere(ending: bytes) -> None:
    """Events come out whole however the stream is chunked, with comments, multi-line data and ids."""
    stream = b"".join(
        line + ending
        for line in [b": ping", b"", b"event: endpoint", b"data: /messages/", b"", b"id: 7", b"data: a", b"data:b", b""]
    )
    whole = SSEParser(1024)
    expected = [*whole.feed(stream), *whole.close()]
    assert [(e.event, e.data, e.id) for e in expected] == [("endpoint", b"/messages/", None), ("message", b"a\nb", "7")]
    for cut in range(len(stream)):
        parser = SSEParser(1024)
        assert [*parser.feed(stream[:cut]), *parser.feed(stream[cut:]), *parser.close()] == expected


def test_sse_parser_bounds_events() -> None:
    parser = SSEParser(8)
    with pytest.raises(SSEError):
        parser.feed(b"data: 0123456789\n")
    with pytest.raises(SSEError):
        SSEParser(8).feed(b"data: 0123456789")
