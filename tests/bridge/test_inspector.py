"""The MCP Inspector CLI, a client users reach for first, lists and calls tools through the bridge."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import node_bin, run_bridge

INSPECTOR_TIMEOUT = 60
"""Seconds for one Inspector CLI run (it starts node and connects)."""


def inspector(url: str, *args: str) -> dict[str, object]:
    completed = subprocess.run(
        [node_bin("mcp-inspector"), "--cli", url, "--transport", "http", *args],
        capture_output=True,
        text=True,
        timeout=INSPECTOR_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_the_inspector_cli_lists_and_calls_tools_through_the_bridge() -> None:
    """`--method tools/list` shows server-everything's tools; `tools/call echo` returns the echo."""
    with run_bridge("--", node_bin("mcp-server-everything"), "stdio") as bridge:
        listed = inspector(bridge.mcp, "--method", "tools/list")
        names = {tool["name"] for tool in listed["tools"]}  # type: ignore[attr-defined]
        assert "echo" in names
        called = inspector(
            bridge.mcp, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=from inspector"
        )
        assert called["content"] == [{"type": "text", "text": "Echo: from inspector"}]
