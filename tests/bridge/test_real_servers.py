"""Real reference servers behind the bridge, driven by the SDK client in both protocol eras and legacy SSE."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client

from tests.conftest import node_bin, run_bridge

pytestmark = pytest.mark.anyio

ERAS = ["auto", "legacy"]
"""`auto` lands on 2026-07-28 through the bridge's server/discover; `legacy` forces the 2025-11-25 handshake."""


@pytest.mark.parametrize("mode", ERAS)
async def test_server_everything_lists_and_calls_in_both_eras(mode: str) -> None:
    """Tools, prompts and resources of server-everything reach the client whichever era it negotiates."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp, mode=mode) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert {"echo", "get-sum", "get-tiny-image"} <= tools
                echoed = await client.call_tool("echo", {"message": f"hello {mode}"})
                assert echoed.content[0].text == f"Echo: hello {mode}"  # type: ignore[union-attr]
                total = await client.call_tool("get-sum", {"a": 2, "b": 40})
                assert "42" in total.content[0].text  # type: ignore[union-attr]
                prompts = (await client.list_prompts()).prompts
                assert any(prompt.name == "simple-prompt" for prompt in prompts)
                resources = (await client.list_resources()).resources
                assert resources
                read = await client.read_resource(resources[0].uri)
                assert read.contents
                assert client.server_info is not None and client.server_info.name == "mcp-servers/everything"
                assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")


@pytest.mark.parametrize("mode", ERAS)
async def test_server_filesystem_reads_a_file_through_the_bridge(mode: str, tmp_path: Path) -> None:
    """server-filesystem lists and reads a real directory; its 14 tools are all listed."""
    (tmp_path / "note.txt").write_text("plexus was here\n")
    with run_bridge("--", node_bin("mcp-server-filesystem"), str(tmp_path)) as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp, mode=mode) as client:
                tools = (await client.list_tools()).tools
                assert len(tools) >= 14
                listing = await client.call_tool("list_directory", {"path": str(tmp_path)})
                assert "note.txt" in listing.content[0].text  # type: ignore[union-attr]
                content = await client.call_tool("read_text_file", {"path": str(tmp_path / "note.txt")})
                assert "plexus was here" in content.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_mcp_server_time_answers_through_the_bridge(mode: str) -> None:
    """The PyPI reference server (Python, SDK 1.x) converts a time through the bridge."""
    server = str(Path(sys.executable).parent / "mcp-server-time")
    with run_bridge("--", server, "--local-timezone", "UTC") as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp, mode=mode) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert names == {"get_current_time", "convert_time"}
                result = await client.call_tool(
                    "convert_time",
                    {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
                )
                assert "21:00" in result.content[0].text  # type: ignore[union-attr]


async def test_legacy_sse_client_lists_and_calls() -> None:
    """An old client on the HTTP+SSE transport (GET /sse, POST /messages/) gets the same tools and answers."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as bridge:
        with anyio.fail_after(20):
            async with Client(sse_client(bridge.url + "/sse")) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert "echo" in tools
                echoed = await client.call_tool("echo", {"message": "over sse"})
                assert echoed.content[0].text == "Echo: over sse"  # type: ignore[union-attr]
