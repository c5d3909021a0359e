"""The floor: the MCP Python SDK's own streamable-HTTP server answering `echo` itself, no stdio hop behind it.

The lowlevel `mcp.server.Server` with the SDK's defaults (stateful sessions, SSE-framed answers, both protocol eras
on one endpoint), served by uvicorn on loopback: what a native Python HTTP MCP server costs per call, so each bridge's
number can be read as "the floor plus its hop". Its tool is the echo server's `echo`, so the same checks apply.

    python bench/peers/sdk_server.py PORT
"""

from __future__ import annotations

import sys
from typing import Any, Final

import mcp_types as types
import uvicorn
from mcp.server import Server, ServerRequestContext

ECHO_TOOL: Final = types.Tool(
    name="echo",
    description="Echo the message back.",
    input_schema={"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
)


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[ECHO_TOOL])


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    message = str((params.arguments or {}).get("message", ""))
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)])


def main(port: int) -> None:
    server: Server[Any] = Server("sdk-floor", version="1", on_list_tools=list_tools, on_call_tool=call_tool)
    uvicorn.run(
        server.streamable_http_app(host="127.0.0.1"), host="127.0.0.1", port=port, log_level="warning",
        access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]))
