"""Per-session mode: a server per client session, bounded, ended by DELETE, and mirroring the client."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.client.context import ClientRequestContext

from tests.bridge.wire import ACCEPT, INITIALIZE, WireSession
from tests.conftest import ECHO_SERVER, alive, node_bin, run_bridge

pytestmark = pytest.mark.anyio


async def test_each_session_gets_its_own_server_and_delete_stops_it() -> None:
    """Two sessions see two server processes; DELETE stops that session's server; --max-children is enforced."""
    with run_bridge("--session-mode", "per-session", "--max-children", "2", "--", *ECHO_SERVER) as bridge:
        async with httpx2.AsyncClient(timeout=10) as client:
            first, second, third = (WireSession(client, bridge.mcp) for _ in range(3))
            await first.initialize()
            await second.initialize()
            pids = [int((await s.call(1, "pid", {}))["result"]["content"][0]["text"]) for s in (first, second)]
            assert pids[0] != pids[1]
            refused = await client.post(bridge.mcp, headers=ACCEPT, json=INITIALIZE)
            assert refused.status_code == 503 and "--max-children" in refused.json()["error"]["message"]
            await client.delete(bridge.mcp, headers={"mcp-session-id": first.session_id})
            with anyio.fail_after(10):
                while alive(pids[0]):
                    await anyio.sleep(0.05)
            assert alive(pids[1])
            await third.initialize()


async def test_modern_clients_fall_back_to_the_handshake_in_per_session_mode() -> None:
    """The SDK client in auto mode is told 2026-07-28 needs no session here, and lands on 2025-11-25."""
    with run_bridge("--session-mode", "per-session", "--", *ECHO_SERVER) as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp) as client:
                result = await client.call_tool("echo", {"message": "per session"})
                assert result.content[0].text == "per session"  # type: ignore[union-attr]
                assert client.protocol_version == "2025-11-25"


async def test_roots_and_sampling_reach_the_client_that_owns_the_server(tmp_path: Path) -> None:
    """server-filesystem started without directories asks the client for roots; server-everything asks for sampling."""
    (tmp_path / "root.txt").write_text("from roots\n")

    async def roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult.model_validate({"roots": [{"uri": tmp_path.as_uri()}]})

    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled by the client"), model="test"
        )

    with run_bridge("--session-mode", "per-session", "--", node_bin("mcp-server-filesystem")) as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp, mode="legacy", list_roots_callback=roots) as client:
                while True:
                    allowed = await client.call_tool("list_allowed_directories", {})
                    if str(tmp_path) in allowed.content[0].text:  # type: ignore[union-attr]
                        break
                    await anyio.sleep(0.1)
                listing = await client.call_tool("list_directory", {"path": str(tmp_path)})
                assert "root.txt" in listing.content[0].text  # type: ignore[union-attr]
    with run_bridge("--session-mode", "per-session", "--", node_bin("mcp-server-everything"), "stdio") as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp, mode="legacy", sampling_callback=sample) as client:
                result = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 10})
                assert "sampled by the client" in str(result.content)
