"""Many clients on one shared server: every reply reaches its own caller, and a killed server is survived."""

from __future__ import annotations

import os
import signal
import time

import anyio
import httpx2
import pytest

from tests.bridge.wire import WireSession
from tests.conftest import ECHO_SERVER, node_bin, run_bridge

pytestmark = pytest.mark.anyio

SESSIONS = 50
CALLS = 200


async def test_fifty_sessions_each_get_only_their_own_replies() -> None:
    """50 sessions reuse the same request ids 1..200 with their own payloads; no reply crosses sessions."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as bridge:
        limits = httpx2.Limits(max_connections=SESSIONS)
        async with httpx2.AsyncClient(limits=limits, timeout=30) as client:
            mismatches: list[str] = []

            async def one_session(number: int) -> None:
                session = WireSession(client, bridge.mcp)
                await session.initialize()
                for request_id in range(1, CALLS + 1):
                    payload = f"session-{number}-call-{request_id}"
                    reply = await session.call(request_id, "echo", {"message": payload})
                    if reply.get("id") != request_id or reply["result"]["content"][0]["text"] != f"Echo: {payload}":
                        mismatches.append(f"{payload} got {reply}")

            with anyio.fail_after(120):
                async with anyio.create_task_group() as group:
                    for number in range(SESSIONS):
                        group.start_soon(one_session, number)
            assert mismatches == []
            metrics = (await client.get(bridge.url + "/metrics")).text
            assert f'plexus_bridge_requests_total{{method="tools/call",outcome="ok"}} {SESSIONS * CALLS}.0' in metrics


async def test_killed_server_fails_inflight_calls_fast_and_comes_back() -> None:
    """kill -9 of the server mid-load: calls in flight get an error at once, /readyz dips, later calls succeed."""
    with run_bridge("--", *ECHO_SERVER, "--slow-ms", "20") as bridge:
        async with httpx2.AsyncClient(timeout=30) as client:
            sessions = [WireSession(client, bridge.mcp) for _ in range(8)]
            for session in sessions:
                await session.initialize()
            first_pid = int((await sessions[0].call(1, "pid", {}))["result"]["content"][0]["text"])
            outcomes: list[tuple[str, float]] = []

            async def caller(session: WireSession) -> None:
                for request_id in range(100, 110):
                    started = time.monotonic()
                    reply = await session.call(request_id, "echo", {"message": "x"})
                    outcomes.append(("error" if "error" in reply else "ok", time.monotonic() - started))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for session in sessions:
                        group.start_soon(caller, session)
                    await anyio.sleep(0.1)
                    os.kill(first_pid, signal.SIGKILL)
                    with anyio.fail_after(5):
                        while bridge.ready():  # readiness must drop while the server restarts
                            await anyio.sleep(0.005)
            errors = [elapsed for outcome, elapsed in outcomes if outcome == "error"]
            assert errors, "calls in flight at the kill must fail"
            assert max(errors) < 2.0, "a failed call must not wait for a timeout"
            with anyio.fail_after(30):
                while not bridge.ready():
                    await anyio.sleep(0.05)
            second_pid = int((await sessions[0].call(2, "pid", {}))["result"]["content"][0]["text"])
            assert second_pid != first_pid
            reply = await sessions[1].call(3, "echo", {"message": "after restart"})
            assert reply["result"]["content"][0]["text"] == "after restart"
            metrics = (await client.get(bridge.url + "/metrics")).text
            assert "plexus_bridge_server_restarts_total 1.0" in metrics
