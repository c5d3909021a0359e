"""Many small MCP servers in one process, for the aggregator benchmark: target N answers at `/tN/mcp`.

Each offers 20 tools (`tool00`..`tool19`, each with a small input schema) over streamable HTTP with plain JSON
answers; `tools/call` echoes its `message` argument. One process instead of fifty keeps the benchmark about the
aggregator, not about the machine running fifty servers. `POST /control/hang/N` makes target N stop answering (its
requests wait until `POST /control/resume/N`), to measure lists and calls while one target hangs.

    python bench/many_targets.py PORT
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import orjson
import uvicorn
from bench_common import receive_body

TOOLS_PER_TARGET: Final = 20
PROTOCOL_VERSION: Final = "2025-11-25"
_JSON: Final = [(b"content-type", b"application/json")]
_TOOLS: Final = [
    {
        "name": f"tool{index:02d}",
        "description": f"Tool number {index}: echoes its message, as every tool of this benchmark target does.",
        "inputSchema": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "Text to echo."}},
            "required": ["message"],
        },
    }
    for index in range(TOOLS_PER_TARGET)
]
_hung: dict[str, asyncio.Event] = {}
"""Targets told to hang, each with the event that releases its waiting requests."""


async def _respond(send: Any, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    parts = scope["path"].strip("/").split("/")
    if parts[0] == "control" and len(parts) == 3:
        if parts[1] == "hang":
            _hung.setdefault(parts[2], asyncio.Event())
        else:
            _hung.pop(parts[2], asyncio.Event()).set()
        await _respond(send, 200)
        return
    if len(parts) != 2 or parts[1] != "mcp":
        await _respond(send, 404)
        return
    release = _hung.get(parts[0].removeprefix("t"))
    if release is not None:
        await release.wait()
    if scope["method"] != "POST":
        await _respond(send, 405)
        return
    message = orjson.loads(await receive_body(receive))
    if "id" not in message:
        await _respond(send, 202)
        return
    headers = _JSON
    method = message.get("method")
    result: dict[str, Any]
    if method == "initialize":
        result = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": f"bench-target-{parts[0]}", "version": "1"},
        }
        headers = [*_JSON, (b"mcp-session-id", secrets.token_hex(16).encode())]
    elif method == "tools/list":
        result = {"tools": _TOOLS}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": message["params"]["arguments"]["message"]}]}
    else:
        result = {}
    await _respond(send, 200, orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), headers)


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", access_log=False,
        log_level="warning", lifespan="off",
    )  # fmt: skip
