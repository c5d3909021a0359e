"""Two aggregator replicas sharing a session key: any replica serves any session, and losing one loses no session.

No load balancer runs here, so the tests play its part: requests of one session go to either replica, and after a
replica dies, to the one left (as a Service does once the dead pod's endpoint is gone).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.aggregator.conftest import run_aggregator, wait_for, write_config
from tests.bridge.wire import WireSession
from tests.conftest import ECHO_SERVER, RunningBridge, run_bridge

pytestmark = pytest.mark.anyio


@contextlib.contextmanager
def two_replicas(tmp_path: Path) -> Iterator[tuple[RunningBridge, RunningBridge]]:
    """An echo bridge and two aggregator replicas over it sharing one session key, both with the target up."""
    key = tmp_path / "session-key"
    key.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    with run_bridge("--", *ECHO_SERVER) as echo:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp})
        with (
            run_aggregator("--config", str(config), "--session-key-file", str(key)) as first,
            run_aggregator("--config", str(config), "--session-key-file", str(key)) as second,
        ):
            wait_for(first, echo="up")
            wait_for(second, echo="up")
            yield first, second


async def test_a_session_started_on_one_replica_continues_on_the_other(tmp_path: Path) -> None:
    with two_replicas(tmp_path) as (first, second):
        async with httpx2.AsyncClient(timeout=10) as http:
            session = WireSession(http, first.mcp)
            await session.initialize()
            assert len(session.session_id) > 100  # sealed: version and capabilities travel in the id
            session.url = second.mcp
            reply = await session.call(1, "echo_echo", {"message": "on the other replica"})
            assert reply["result"]["content"][0]["text"] == "on the other replica"
            listed = await session.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            assert "echo_echo" in {tool["name"] for tool in listed.json()["result"]["tools"]}

            forged = WireSession(http, second.mcp)
            forged.session_id = session.session_id[:-4] + "AAAA"
            refused = await forged.post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
            assert refused.status_code == 404


async def test_without_a_shared_key_another_replica_does_not_know_the_session(tmp_path: Path) -> None:
    with run_bridge("--", *ECHO_SERVER) as echo:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp})
        with run_aggregator("--config", str(config)) as first, run_aggregator("--config", str(config)) as second:
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, first.mcp)
                await session.initialize()
                session.url = second.mcp
                lost = await session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert lost.status_code == 404 and "initialize" in lost.json()["error"]["message"]


async def test_clients_carry_on_when_a_replica_is_killed_mid_load(tmp_path: Path) -> None:
    """Eight sessions spread every call over both replicas; SIGKILL one: only calls in flight to it fail, and every
    session goes on calling on the other.
    """
    with two_replicas(tmp_path) as (doomed, survivor):
        alive = [doomed.mcp, survivor.mcp]
        failed: list[str] = []
        after_kill = [0] * 8
        killed = anyio.Event()

        async def client(index: int, http: httpx2.AsyncClient) -> None:
            session = WireSession(http, alive[index % 2])
            await session.initialize()
            for request_id in itertools.count(1):
                if after_kill[index] >= 20:
                    return
                session.url = alive[request_id % len(alive)]
                text = f"session {index} call {request_id}"
                try:
                    reply: dict[str, Any] = await session.call(request_id, "echo_echo", {"message": text})
                except httpx2.TransportError as exc:
                    failed.append(f"{session.url}: {exc!r}")
                    continue
                assert reply["result"]["content"][0]["text"] == text, reply
                if killed.is_set():
                    after_kill[index] += 1

        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=10) as http, anyio.create_task_group() as group:
                for index in range(8):
                    group.start_soon(client, index, http)
                await anyio.sleep(1.0)
                doomed.process.send_signal(signal.SIGKILL)
                alive.remove(doomed.mcp)  # the load balancer drops the dead endpoint
                killed.set()
        assert len(failed) <= 8, failed  # at most the one call each session had in flight to the dead replica
        assert all(count >= 20 for count in after_kill)
