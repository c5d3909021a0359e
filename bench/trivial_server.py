"""A do-nothing HTTP server for the load generator's ceiling: it answers every MCP call at once, as the bridge would.

`initialize` gets a session id, notifications get 202, `tools/call echo` gets its message back (so replies are
verified the same way as through the bridge), anything else that is not a POST gets an empty 200. Uvicorn with
uvloop and httptools, as under the bridge. Runs in its own process: `bridge_bench.py --role trivial --port PORT`.
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any, Final

import orjson
from bench_common import HOST, PROTOCOL_VERSION, receive_body

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


async def trivial_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """Answers like the bridge would, at once: initialize gets a session id, tools/call echoes its message."""
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    message = orjson.loads(await receive_body(receive))
    if "id" not in message:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = _JSON_HEADERS
    if message.get("method") == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "trivial", "version": "1"},
        }
        headers = [*_JSON_HEADERS, (b"mcp-session-id", secrets.token_hex(16).encode())]
    else:
        result = {"content": [{"type": "text", "text": message["params"]["arguments"]["message"]}]}
    body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def trivial_main(port: int) -> None:
    import uvicorn

    uvicorn.run(
        trivial_app, host=HOST, port=port, loop="uvloop", http="httptools", lifespan="off", access_log=False,
        log_level="warning",
    )  # fmt: skip
