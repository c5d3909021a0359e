"""The aggregator in front of real bridges: one endpoint for every target, in both eras, through faults and edits."""

from __future__ import annotations

import os
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
from tests.conftest import ECHO_SERVER, ROOT, alive, free_port, node_bin, run_bridge, run_server, wait_http

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_one_endpoint_lists_and_calls_every_target(mode: str, tmp_path: Path) -> None:
    """Tools, prompts and resources of two bridges appear prefixed; calls, prompts and reads reach the owner."""
    with (
        run_bridge("--", *ECHO_SERVER) as echo,
        run_bridge("--", node_bin("mcp-server-everything"), "stdio") as everything,
    ):
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp, "everything": everything.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up", everything="up")
            with anyio.fail_after(30):
                async with Client(aggregator.mcp, mode=mode) as client:
                    names = {tool.name for tool in (await client.list_tools()).tools}
                    assert {"echo_echo", "echo_pid", "everything_echo", "everything_get-sum"} <= names
                    echoed = await client.call_tool("echo_echo", {"message": "through two hops"})
                    assert echoed.content[0].text == "through two hops"  # type: ignore[union-attr]
                    total = await client.call_tool("everything_get-sum", {"a": 20, "b": 22})
                    assert "42" in total.content[0].text  # type: ignore[union-attr]
                    prompt = await client.get_prompt("everything_simple-prompt")
                    assert prompt.messages
                    resources = (await client.list_resources()).resources
                    assert resources and str(resources[0].uri).startswith("plexus://everything/")
                    read = await client.read_resource(resources[0].uri)
                    assert str(read.contents[0].uri) == str(resources[0].uri)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_filesystem_time_and_a_rest_api_through_one_endpoint(mode: str, tmp_path: Path) -> None:
    """server-filesystem (npm), mcp-server-time (PyPI) and a REST API behind the OpenAPI bridge, each behind its
    bridge: clients of both eras list them all and call each.
    """
    (tmp_path / "note.txt").write_text("plexus was here\n")
    store = [sys.executable, str(ROOT / "examples" / "store_api.py")]
    time_server = str(Path(sys.executable).parent / "mcp-server-time")
    with (
        run_server(lambda port: [*store, str(port)], wait=False) as api,
        run_bridge("--", node_bin("mcp-server-filesystem"), str(tmp_path)) as files,
        run_bridge("--", time_server, "--local-timezone", "UTC") as clock,
    ):
        wait_http(api.url + "/openapi.json")
        spec = ["--spec", api.url + "/openapi.json", "--base-url", api.url]
        with run_bridge(*spec, mode="openapi") as rest:
            config = tmp_path / "aggregator.yaml"
            write_config(config, {"files": files.mcp, "time": clock.mcp, "store": rest.mcp})
            with run_aggregator("--config", str(config)) as aggregator:
                wait_for(aggregator, files="up", time="up", store="up")
                with anyio.fail_after(30):
                    async with Client(aggregator.mcp, mode=mode) as client:
                        names = {tool.name for tool in (await client.list_tools()).tools}
                        assert {"files_read_text_file", "time_convert_time", "store_getItem"} <= names
                        read = await client.call_tool("files_read_text_file", {"path": str(tmp_path / "note.txt")})
                        assert "plexus was here" in read.content[0].text  # type: ignore[union-attr]
                        converted = await client.call_tool(
                            "time_convert_time",
                            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
                        )
                        assert "21:00" in converted.content[0].text  # type: ignore[union-attr]
                        item = await client.call_tool("store_getItem", {"item_id": 1})
                        assert item.structured_content is not None and item.structured_content["id"] == 1


async def test_a_dead_target_is_reported_and_never_blocks_the_others(tmp_path: Path) -> None:
    """A target nobody listens on is listed as missing in `_meta`; the live target's tools are served at once."""
    with run_bridge("--", *ECHO_SERVER) as echo:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp, "ghost": f"http://127.0.0.1:{free_port()}/mcp"})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up", ghost="down")
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                started = time.monotonic()
                listing = (await session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).json()["result"]
                assert time.monotonic() - started < 1.0
                assert {tool["name"] for tool in listing["tools"]} == {"echo_echo", "echo_pid", "echo_announce"}
                missing = listing["_meta"]["dev.plexus/missing"]
                assert missing[0]["target"] == "ghost" and "ghost" in missing[0]["reason"]


async def test_a_killed_target_goes_down_fast_and_comes_back(tmp_path: Path) -> None:
    """Calls to a target whose bridge died fail at once naming it; when it is back, its tools return."""
    port = free_port()
    bridge_cmd = [sys.executable, "-m", "bridge", "stdio", "--port", str(port), "--", *ECHO_SERVER]
    first = subprocess.Popen(bridge_cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": f"http://127.0.0.1:{port}/mcp"})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up")
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                first.kill()
                first.wait()
                started = time.monotonic()
                failed = await session.call(1, "echo_echo", {"message": "anyone?"})
                assert time.monotonic() - started < 2.0
                assert "echo" in failed["error"]["message"]
                wait_for(aggregator, echo="down")
                second = subprocess.Popen(bridge_cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
                try:
                    wait_for(aggregator, echo="up")
                    result = await session.call(2, "echo_echo", {"message": "back"})
                    assert result["result"]["content"][0]["text"] == "back"
                finally:
                    second.terminate()
                    second.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


async def test_editing_the_config_adds_targets_and_tells_connected_clients(tmp_path: Path) -> None:
    """A target added to the file appears for a connected client, which is sent tools/list_changed."""
    with run_bridge("--", *ECHO_SERVER) as first, run_bridge("--", *ECHO_SERVER) as second:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"one": first.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, one="up")
            changed = anyio.Event()

            async def on_message(message: Any) -> None:
                if "ToolListChanged" in type(getattr(message, "root", message)).__name__:
                    changed.set()

            async with Client(aggregator.mcp, mode="legacy", message_handler=on_message) as client:
                before = {tool.name for tool in (await client.list_tools()).tools}
                write_config(config, {"one": first.mcp, "two": second.mcp})
                with anyio.fail_after(20):
                    await changed.wait()
                after = {tool.name for tool in (await client.list_tools()).tools}
                assert before < after and "two_echo" in after


def test_dev_mode_starts_a_bridge_per_entry_and_stops_them(tmp_path: Path) -> None:
    """`plexus-aggregator dev FILE` runs stdio and OpenAPI entries as bridges and stops them with itself."""
    config = tmp_path / "dev.yaml"
    config.write_text(
        "targets:\n"
        f"  - name: echo\n    stdio: [{sys.executable}, {ECHO_SERVER[1]}]\n"
        f"  - name: rest\n    openapi: {{spec: {ROOT / 'bench' / 'echo_api.yaml'}, base_url: 'http://127.0.0.1:9'}}\n"
    )
    with run_aggregator("dev", str(config)) as aggregator:
        wait_for(aggregator, echo="up", rest="up")
        children = subprocess.run(["pgrep", "-P", str(aggregator.process.pid)], capture_output=True, text=True)
        pids = [int(pid) for pid in children.stdout.split()]
        assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_dev_mode_bridges_do_not_outlive_a_killed_aggregator(tmp_path: Path) -> None:
    """SIGKILL gives the aggregator no chance to stop its bridges: they stop by themselves (and their servers)."""
    config = tmp_path / "dev.yaml"
    config.write_text(f"targets:\n  - name: echo\n    stdio: [{sys.executable}, {ECHO_SERVER[1]}]\n")
    with run_aggregator("dev", str(config)) as aggregator:
        wait_for(aggregator, echo="up")
        bridges = subprocess.run(["pgrep", "-P", str(aggregator.process.pid)], capture_output=True, text=True)
        (bridge,) = (int(pid) for pid in bridges.stdout.split())
        servers = subprocess.run(["pgrep", "-P", str(bridge)], capture_output=True, text=True)
        (server,) = (int(pid) for pid in servers.stdout.split())
        aggregator.process.kill()
        aggregator.process.wait()
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in (bridge, server)):
            assert time.monotonic() < deadline, "the bridge or its server outlived the aggregator"
            time.sleep(0.05)


async def test_per_target_policy_filters_renames_and_redescribes(tmp_path: Path) -> None:
    """include/exclude globs, a rename and a description override shape what clients see, and calls still route."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as everything:
        config = tmp_path / "aggregator.yaml"
        config.write_text(
            "targets:\n"
            f"  - name: everything\n    url: {everything.mcp}\n"
            "    include: ['echo', 'get-*']\n    exclude: ['get-env']\n"
            "    rename: {get-sum: add}\n    descriptions: {echo: Says it back.}\n"
        )
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, everything="up")
            async with Client(aggregator.mcp, mode="legacy") as client:
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                assert "everything_add" in tools and "everything_get-sum" not in tools
                assert "everything_get-env" not in tools and "everything_trigger-sampling-request" not in tools
                assert tools["everything_echo"].description == "Says it back."
                total = await client.call_tool("everything_add", {"a": 1, "b": 2})
                assert "3" in total.content[0].text  # type: ignore[union-attr]


async def test_conditional_prefixes_drop_the_prefix_for_a_single_target(tmp_path: Path) -> None:
    """With `prefix: conditional` a lone target's tools keep their own names."""
    with run_bridge("--", *ECHO_SERVER) as echo:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp}, prefix="conditional")
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up")
            async with Client(aggregator.mcp, mode="legacy") as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert names == {"echo", "pid", "announce"}


async def test_lists_page_through_every_target_and_survive_a_change_between_pages(tmp_path: Path) -> None:
    """220 tools of 11 targets come in pages of 200; a target removed between two pages shifts nothing out of
    reach: the second page resumes after the last tool the first one returned.
    """
    many = [sys.executable, str(ROOT / "bench" / "many_targets.py")]
    with run_server(lambda port: [*many, str(port)], wait=False) as upstream:
        wait_http(upstream.url + "/")
        config = tmp_path / "aggregator.yaml"
        entries = {f"t{index:02d}": f"{upstream.url}/t{index}/mcp" for index in range(11)}
        write_config(config, entries)
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, **dict.fromkeys(entries, "up"))
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()

                async def page(request_id: int, cursor: str | None) -> dict[str, Any]:
                    params = {"cursor": cursor} if cursor else {}
                    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": params}
                    result: dict[str, Any] = (await session.post(message)).json()["result"]
                    return result

                first = await page(1, None)
                assert len(first["tools"]) == 200 and first["nextCursor"]
                del entries["t00"]
                write_config(config, entries)
                wait_for(aggregator, t01="up")
                with anyio.fail_after(20):
                    while "t00" in targets(aggregator):
                        await anyio.sleep(0.05)
                second = await page(2, first["nextCursor"])
                assert "nextCursor" not in second
                current = await page(3, None)
                now = {tool["name"] for tool in current["tools"]}
                assert "nextCursor" not in current
                seen = {tool["name"] for tool in first["tools"] + second["tools"]}
                assert len(now) == 200 and now <= seen
                bad = await session.post({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"cursor": "x"}})
                assert "Unknown cursor" in bad.json()["error"]["message"]
