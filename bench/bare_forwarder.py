"""The Python ceiling for a stdio bridge on this machine: the least a forwarder can do, for comparison only.

Raw ASGI under uvicorn (uvloop, httptools), orjson, one shared child, request ids rewritten, JSON answers; no
sessions, limits, health, metrics, eras or errors worth the name. `bridge_bench.py` runs the same load against it
as against plexus-bridge, back to back, so the gap between the two is what the bridge's features cost.

    python bench/bare_forwarder.py PORT -- COMMAND [ARGS...]
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Forwarder:
    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.pending: dict[int, tuple[asyncio.Future[bytes], Any]] = {}
        self.ids = itertools.count()
        self.stdin: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24
        )
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        asyncio.get_running_loop().create_task(self.read(process.stdout))

    async def read(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            message = orjson.loads(line)
            waiter, client_id = self.pending.pop(message["id"])
            message["id"] = client_id
            waiter.set_result(orjson.dumps(message))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await self.start()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":  # a DELETE ending a session: there are none
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        more = True
        while more:
            event = await receive()
            body += event.get("body", b"")
            more = event.get("more_body", False)
        message = orjson.loads(body)
        headers = [(b"content-type", b"application/json"), (b"mcp-session-id", b"bare")]
        if "id" not in message:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        child_id = next(self.ids)
        self.pending[child_id] = (waiter, message["id"])
        message["id"] = child_id
        assert self.stdin is not None
        self.stdin.write(orjson.dumps(message) + b"\n")
        reply = await waiter
        headers.append((b"content-length", b"%d" % len(reply)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})


def main() -> None:
    port = int(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1 :]
    uvicorn.run(
        Forwarder(command), host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
        log_level="warning", proxy_headers=False, server_header=False, date_header=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
