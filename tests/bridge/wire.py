"""A raw streamable-HTTP MCP session over httpx2, for tests that must see exact ids, statuses and bodies."""

from __future__ import annotations

from typing import Any

import httpx2

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


class WireSession:
    """One handshake-era session, speaking JSON-RPC by hand."""

    def __init__(self, client: httpx2.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.session_id = ""

    async def initialize(self) -> dict[str, Any]:
        response = await self.client.post(self.url, headers=ACCEPT, json=INITIALIZE)
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        result: dict[str, Any] = response.json()["result"]
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    async def post(self, message: Any, **headers: str) -> httpx2.Response:
        return await self.client.post(
            self.url, headers={**ACCEPT, "mcp-session-id": self.session_id, **headers}, json=message
        )

    async def call(self, request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = await self.post(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        )
        assert response.headers["content-type"].startswith("application/json"), response.text
        reply: dict[str, Any] = response.json()
        return reply
