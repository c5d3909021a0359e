"""Faults of real targets: one hung (SIGSTOP), one answering errors, one killed mid-call, one restarted, one slow
enough to trip the circuit breaker, and a config edit under 20 connected clients. The other targets never notice.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client

from tests.aggregator.conftest import run_aggregator, targets, wait_for, write_config
from tests.bridge.wire import WireSession
from tests.conftest import ECHO_SERVER, ROOT, free_port, run_bridge, run_server, stop_process

pytestmark = pytest.mark.anyio


def text(result: dict[str, Any]) -> str:
    content: str = result["result"]["content"][0]["text"]
    return content


async def test_a_hung_target_fails_its_calls_at_its_deadline_and_the_others_carry_on(tmp_path: Path) -> None:
    """A stopped bridge: its calls fail after its own call timeout naming it, lists and the other target stay
    fast, it is reported down and its tools withdrawn; once it resumes it is back with its tools.
    """
    with run_bridge("--", *ECHO_SERVER) as healthy, run_bridge("--", *ECHO_SERVER) as frozen:
        config = tmp_path / "aggregator.yaml"
        config.write_text(
            f"targets:\n  - name: healthy\n    url: {healthy.mcp}\n"
            f"  - name: frozen\n    url: {frozen.mcp}\n    timeouts: {{call: 1}}\n"
        )
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, healthy="up", frozen="up")
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                frozen.process.send_signal(signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    async with anyio.create_task_group() as group:
                        hung: dict[str, Any] = {}

                        async def call_frozen() -> None:
                            hung.update(await session.call(1, "frozen_echo", {"message": "hello?"}))

                        group.start_soon(call_frozen)
                        await anyio.sleep(0.1)
                        quick = time.monotonic()
                        assert text(await session.call(2, "healthy_echo", {"message": "fine"})) == "fine"
                        listing = await session.post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
                        assert time.monotonic() - quick < 0.5
                        assert "frozen_echo" in {tool["name"] for tool in listing.json()["result"]["tools"]}
                    assert 0.9 < time.monotonic() - started < 3.0
                    assert "frozen" in hung["error"]["message"] and "1 s" in hung["error"]["message"]
                    wait_for(aggregator, frozen="down")
                    listing = await session.post({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
                    result = listing.json()["result"]
                    assert {tool["name"] for tool in result["tools"]} == {
                        "healthy_echo",
                        "healthy_pid",
                        "healthy_announce",
                    }
                    assert [missing["target"] for missing in result["_meta"]["dev.plexus/missing"]] == ["frozen"]
                    down = await session.call(5, "frozen_echo", {"message": "still there?"})
                    assert "target 'frozen', which is down" in down["error"]["message"]
                finally:
                    frozen.process.send_signal(signal.SIGCONT)
                wait_for(aggregator, frozen="up")
                assert text(await session.call(6, "frozen_echo", {"message": "back"})) == "back"


async def test_a_target_answering_errors_is_reported_with_its_status_and_the_rest_served(tmp_path: Path) -> None:
    """A plain web server at a target's URL (it answers HTTP 501 to MCP's POST): down, with that status named."""
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    with run_bridge("--", *ECHO_SERVER) as echo, run_server(lambda port: [*command, str(port)], wait=False) as not_mcp:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp, "web": not_mcp.url + "/mcp"})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up", web="down")
            assert "HTTP 501" in targets(aggregator)["web"]["error"]
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                listing = (await session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).json()["result"]
                assert {tool["name"] for tool in listing["tools"]} == {"echo_echo", "echo_pid", "echo_announce"}
                assert "HTTP 501" in listing["_meta"]["dev.plexus/missing"][0]["reason"]
                refused = await session.call(2, "web_anything", {})
                assert "target 'web', which is down (" in refused["error"]["message"]


async def test_a_target_killed_mid_call_fails_that_call_at_once(tmp_path: Path) -> None:
    """kill -9 of a bridge while a slow call is in flight: the call fails in well under its timeout, naming the
    target; the other target answers throughout.
    """
    with run_bridge("--", *ECHO_SERVER) as healthy, run_bridge("--", *ECHO_SERVER, "--slow-ms", "3000") as slow:
        config = tmp_path / "aggregator.yaml"
        config.write_text(
            f"targets:\n  - name: healthy\n    url: {healthy.mcp}\n"
            f"  - name: slow\n    url: {slow.mcp}\n    timeouts: {{list: 10}}\n"
        )
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, healthy="up", slow="up")
            async with httpx2.AsyncClient(timeout=30) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                failed: dict[str, Any] = {}

                async def call_slow() -> None:
                    failed.update(await session.call(1, "slow_echo", {"message": "never answered"}))

                async with anyio.create_task_group() as group:
                    group.start_soon(call_slow)
                    await anyio.sleep(0.5)
                    killed = time.monotonic()
                    slow.process.kill()
                assert time.monotonic() - killed < 2.0
                assert "slow" in failed["error"]["message"]
                assert text(await session.call(2, "healthy_echo", {"message": "unaffected"})) == "unaffected"


async def test_a_restarted_target_gets_a_new_session_without_the_client_noticing(tmp_path: Path) -> None:
    """The bridge restarts on the same port (its sessions are gone): the next call re-initializes upstream and
    succeeds; the client sees nothing but the answer.
    """
    port = free_port()
    command = [sys.executable, "-m", "bridge", "stdio", "--port", str(port), "--", *ECHO_SERVER]
    first = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": f"http://127.0.0.1:{port}/mcp"})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up")
            async with Client(aggregator.mcp, mode="legacy") as client:
                before = await client.call_tool("echo_pid", {})
                stop_process(first)
                first = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
                with anyio.fail_after(30):
                    while True:
                        try:
                            if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                                break
                        except httpx2.TransportError:
                            pass
                        await anyio.sleep(0.05)
                after = await client.call_tool("echo_pid", {})
                assert after.is_error is False
                assert after.content[0].text != before.content[0].text  # type: ignore[union-attr]
            assert "re-initializing" in aggregator.log()
    finally:
        stop_process(first)


async def test_calls_timing_out_in_a_row_open_the_circuit_and_the_target_comes_back(tmp_path: Path) -> None:
    """Five calls in a row that find no answer in time take the target out at once; it is tried again and
    returns when its handshake and lists succeed.
    """
    with run_bridge("--", *ECHO_SERVER, "--slow-ms", "300") as slow:
        config = tmp_path / "aggregator.yaml"
        config.write_text(f"targets:\n  - name: slow\n    url: {slow.mcp}\n    timeouts: {{call: 0.1, list: 5}}\n")
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, slow="up")
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                for request_id in range(5):
                    failed = await session.call(request_id, "slow_echo", {"message": "too slow"})
                    assert "no reply" in failed["error"]["message"]
            with anyio.fail_after(30):
                while "circuit opened after 5 failed calls" not in aggregator.log():
                    await anyio.sleep(0.1)
            wait_for(aggregator, slow="up")


async def test_a_config_edit_under_twenty_clients_tells_them_all_and_loses_no_call(tmp_path: Path) -> None:
    """20 connected clients keep calling a target that stays while the file swaps another target for a third:
    every client is sent tools/list_changed, sees the new set, and no call fails.
    """
    with (
        run_bridge("--", *ECHO_SERVER) as stays,
        run_bridge("--", *ECHO_SERVER) as leaves,
        run_bridge("--", *ECHO_SERVER) as arrives,
    ):
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"stays": stays.mcp, "leaves": leaves.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, stays="up", leaves="up")
            notified = [anyio.Event() for _ in range(20)]
            calls = [0] * 20
            seen: list[set[str]] = [set() for _ in range(20)]

            async def client_session(index: int) -> None:
                async def on_message(message: Any) -> None:
                    if "ToolListChanged" in type(getattr(message, "root", message)).__name__:
                        notified[index].set()

                async with Client(aggregator.mcp, mode="legacy", message_handler=on_message) as client:
                    while True:
                        result = await client.call_tool("stays_echo", {"message": f"client {index}"})
                        assert result.is_error is False
                        assert result.content[0].text == f"client {index}"  # type: ignore[union-attr]
                        calls[index] += 1
                        if notified[index].is_set():
                            # The removal and the arrival may come as two changes: list until both show.
                            seen[index] = {tool.name for tool in (await client.list_tools()).tools}
                            if "arrives_echo" in seen[index] and "leaves_echo" not in seen[index]:
                                return
                        await anyio.sleep(0.01)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for index in range(20):
                        group.start_soon(client_session, index)
                    while min(calls) == 0:
                        await anyio.sleep(0.05)
                    write_config(config, {"stays": stays.mcp, "arrives": arrives.mcp})
            assert all(notice.is_set() for notice in notified)
            for names in seen:
                assert names == {
                    f"{target}_{tool}" for target in ("stays", "arrives") for tool in ("echo", "pid", "announce")
                }
