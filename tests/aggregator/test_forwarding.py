"""MCP features forwarded through aggregator and bridge to the right client: sampling, roots, logs at each client's
own level, resource subscriptions, allowed headers; names without prefixes; per-target metrics.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import MCPDeprecationWarning, MCPError
from mcp.client import Client

from tests.aggregator.conftest import run_aggregator, wait_for, write_config
from tests.bridge.test_inspector import inspector
from tests.bridge.wire import WireSession
from tests.conftest import ECHO_SERVER, FIXTURES, ROOT, free_port, node_bin, run_bridge, run_server, wait_http

pytestmark = pytest.mark.anyio

FIXTURE_SERVER = [sys.executable, str(FIXTURES / "servers" / "conformance_server.py")]


def handshake_era_only() -> contextlib.AbstractContextManager[Any]:
    """The SDK warns that setLevel and subscribe are gone in 2026-07-28; these clients speak 2025-11-25."""
    return pytest.warns(MCPDeprecationWarning)


def sampler(answer: str) -> Any:
    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text=answer), model="test-model", stop_reason="endTurn"
        )

    return sample


async def test_sampling_reaches_the_client_whose_call_asked_for_it(tmp_path: Path) -> None:
    """Two clients call a sampling tool at once; each call's sampling request reaches its own client only.

    The target is the fixture server on the SDK's own HTTP transport, which sends each sampling request on the
    stream of the call it belongs to (over stdio nothing says which call asked; see docs/bridge.md).
    """
    http_server = run_server(lambda port: [*FIXTURE_SERVER, "--transport", "http", "--port", str(port)], wait=False)
    with http_server as fixture:
        wait_http(fixture.mcp)
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"fixture": fixture.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, fixture="up")
            replies: dict[str, str] = {}

            async def ask(name: str) -> None:
                async with Client(aggregator.mcp, mode="legacy", sampling_callback=sampler(f"{name} here")) as client:
                    for _ in range(5):
                        result = await client.call_tool("fixture_test_sampling", {"prompt": "who is there?"})
                        assert result.content[0].text == f"LLM response: {name} here"  # type: ignore[union-attr]
                    replies[name] = "ok"

            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    group.start_soon(ask, "alice")
                    group.start_soon(ask, "bob")
            assert replies == {"alice": "ok", "bob": "ok"}

            async with Client(aggregator.mcp, mode="legacy") as client:
                with pytest.raises(MCPError, match="did not declare the 'sampling' capability"):
                    await client.call_tool("fixture_test_sampling", {"prompt": "anyone?"})


async def test_roots_come_from_the_calling_client(tmp_path: Path) -> None:
    """server-everything asks for roots while a call is in flight; the caller's own roots come back."""
    everything = node_bin("mcp-server-everything")
    with run_bridge("--session-mode", "per-session", "--", everything, "stdio") as bridge:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"everything": bridge.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, everything="up")

            async def roots(context: Any) -> types.ListRootsResult:
                return types.ListRootsResult(
                    roots=[types.Root.model_validate({"uri": "file:///srv/project", "name": "project"})]
                )

            async with Client(aggregator.mcp, mode="legacy", list_roots_callback=roots) as client:
                result = await client.call_tool("everything_get-roots-list", {})
                assert "file:///srv/project" in result.content[0].text  # type: ignore[union-attr]


async def test_each_client_gets_logs_at_its_own_level(tmp_path: Path) -> None:
    """The target logs at the most verbose level any client asked for; a client at `error` sees none of its
    info lines, a client at `debug` sees them named after the target.
    """
    with run_bridge("--", *FIXTURE_SERVER) as bridge:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"fixture": bridge.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, fixture="up")
            logs: dict[str, list[types.LoggingMessageNotificationParams]] = {"quiet": [], "chatty": []}

            def collector(name: str) -> Any:
                async def collect(params: types.LoggingMessageNotificationParams) -> None:
                    logs[name].append(params)

                return collect

            async with (
                Client(aggregator.mcp, mode="legacy", logging_callback=collector("quiet")) as quiet,
                Client(aggregator.mcp, mode="legacy", logging_callback=collector("chatty")) as chatty,
            ):
                with handshake_era_only():
                    await quiet.set_logging_level("error")
                    await chatty.set_logging_level("debug")
                for client in (quiet, chatty):
                    result = await client.call_tool("fixture_test_tool_with_logging", {})
                    assert result.is_error is False
            assert logs["quiet"] == []
            assert logs["chatty"] and all(log.level == "info" for log in logs["chatty"])
            assert all((log.logger or "").startswith("fixture") for log in logs["chatty"])


async def test_resource_updates_reach_subscribers_only(tmp_path: Path) -> None:
    """A client subscribed to a resource (by its exposed URI) hears its updates under that URI; another does not."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as bridge:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"everything": bridge.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, everything="up")
            updates: dict[str, list[str]] = {"subscriber": [], "bystander": []}

            def handler(name: str) -> Any:
                async def on_message(message: Any) -> None:
                    root = getattr(message, "root", message)
                    if isinstance(root, types.ResourceUpdatedNotification):
                        updates[name].append(str(root.params.uri))

                return on_message

            async with (
                Client(aggregator.mcp, mode="legacy", message_handler=handler("subscriber")) as subscriber,
                Client(aggregator.mcp, mode="legacy", message_handler=handler("bystander")) as bystander,
            ):
                uri = str((await subscriber.list_resources()).resources[0].uri)
                assert uri.startswith("plexus://everything/")
                with handshake_era_only():
                    await subscriber.subscribe_resource(uri)
                await bystander.call_tool("everything_toggle-subscriber-updates", {})
                with anyio.fail_after(15):
                    while not updates["subscriber"]:
                        await anyio.sleep(0.05)
                await anyio.sleep(0.5)
            assert set(updates["subscriber"]) == {uri}
            assert updates["bystander"] == []


async def test_only_allowed_headers_reach_the_target(tmp_path: Path) -> None:
    """The target's `forward_headers` lets X-Tenant through to the REST API behind an OpenAPI bridge; X-Other,
    which the bridge would pass on, never leaves the aggregator.
    """
    store = run_server(lambda port: [sys.executable, str(ROOT / "examples" / "store_api.py"), str(port)], wait=False)
    with store as api:
        wait_http(api.url + "/openapi.json")
        spec = ["--spec", api.url + "/openapi.json", "--base-url", api.url, "--forward-headers", "X-Tenant,X-Other"]
        with run_bridge(*spec, mode="openapi") as bridge:
            config = tmp_path / "aggregator.yaml"
            config.write_text(f"targets:\n  - name: store\n    url: {bridge.mcp}\n    forward_headers: [X-Tenant]\n")
            with run_aggregator("--config", str(config)) as aggregator:
                wait_for(aggregator, store="up")
                headers = {"X-Tenant": "acme", "X-Other": "secret"}
                async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
                    session = WireSession(http, aggregator.mcp)
                    await session.initialize()
                    seen = (await session.call(1, "store_echoHeaders", {}))["result"]["structuredContent"]
                assert seen.get("x-tenant") == "acme"
                assert "x-other" not in seen


async def test_without_prefixes_a_name_served_twice_is_reported_and_not_exposed(tmp_path: Path) -> None:
    """`prefix: never`: bare names; `echo`, offered by both targets, is left out and named in `_meta`."""
    with run_bridge("--", *ECHO_SERVER) as echo, run_bridge("--", node_bin("mcp-server-everything"), "stdio") as ev:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"mine": echo.mcp, "everything": ev.mcp}, prefix="never")
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, mine="up", everything="up")
            async with httpx2.AsyncClient(timeout=10) as http:
                session = WireSession(http, aggregator.mcp)
                await session.initialize()
                listing = (await session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).json()["result"]
                names = {tool["name"] for tool in listing["tools"]}
                assert {"pid", "announce", "get-sum"} <= names and "echo" not in names
                assert any("'echo'" in conflict for conflict in listing["_meta"]["dev.plexus/conflicts"])
                total = await session.call(2, "get-sum", {"a": 2, "b": 3})
                assert "5" in total["result"]["content"][0]["text"]
                resources = await session.post({"jsonrpc": "2.0", "id": 3, "method": "resources/list"})
                uri = resources.json()["result"]["resources"][0]["uri"]
                assert not uri.startswith("plexus://")
                read = await session.post(
                    {"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {"uri": uri}}
                )
                assert read.json()["result"]["contents"][0]["uri"] == uri


async def test_metrics_count_requests_and_health_per_target(tmp_path: Path) -> None:
    """/metrics shows each target's health, tool count, routed calls by outcome, and cache hits of lists."""
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    with run_bridge("--", *ECHO_SERVER) as echo:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"echo": echo.mcp, "gone": dead})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, echo="up", gone="down")
            async with Client(aggregator.mcp, mode="legacy") as client:
                await client.list_tools()
                await client.call_tool("echo_echo", {"message": "counted"})
            text = httpx2.get(aggregator.url + "/metrics", timeout=5).text
            assert 'plexus_aggregator_target_up{target="echo"} 1.0' in text
            assert 'plexus_aggregator_target_up{target="gone"} 0.0' in text
            assert 'plexus_aggregator_target_tools{target="echo"} 3.0' in text
            assert 'plexus_aggregator_target_requests_total{method="tools/call",outcome="ok",target="echo"} 1.0' in text
            assert 'plexus_aggregator_list_cache_hits_total{list="tools"} 1.0' in text


def test_the_inspector_cli_lists_and_calls_tools_through_the_aggregator(tmp_path: Path) -> None:
    """The MCP Inspector CLI against the aggregator: prefixed tools listed, one called."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as everything:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"everything": everything.mcp})
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, everything="up")
            listed = inspector(aggregator.mcp, "--method", "tools/list")
            assert "everything_echo" in {tool["name"] for tool in listed["tools"]}  # type: ignore[attr-defined]
            called = inspector(
                aggregator.mcp, "--method", "tools/call", "--tool-name", "everything_echo", "--tool-arg", "message=hi"
            )
            assert called["content"] == [{"type": "text", "text": "Echo: hi"}]
