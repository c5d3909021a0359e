"""Both protocol eras, and SSE-framed replies, on top of the load generator's `raw` client.

loadgen's `raw` client reads one JSON body per reply and speaks the 2025-11-25 handshake era. Most peers answer a
POST with an SSE stream (one `message` event, sometimes after a priming event), and some contenders also serve the
stateless 2026-07-28 era. The subclasses here keep loadgen's connection handling, watchdog and window, and change only
what goes on the wire, so every contender is driven, and every reply checked by `bench_common.check_reply`, by the
same code. `register()` makes them selectable by name in a load-generator process (`run.py --role load`).

`McpSession` is the same clients used from this process for what is not a throughput window (probes, cold starts,
aggregator lists and calls): one session, every request bounded by a deadline so a hung contender costs a known time.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import orjson
from bench_common import INITIALIZE, INITIALIZED
from loadgen import CLIENTS, RawClient, load_main

HANDSHAKE: Final = "2025-11-25"
MODERN: Final = "2026-07-28"
ERA_CLIENT: Final = {HANDSHAKE: "handshake", MODERN: "modern"}
"""The load generator's client name for each era."""
STATELESS: Final = "stateless"
"""What the modern client reports as its session id: the 2026-07-28 era has none."""
ENVELOPE: Final[dict[str, Any]] = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "plexus-peers-bench", "version": "1"},
}
"""The per-request `_meta` envelope of 2026-07-28 (`mcp.shared.inbound` requires the first two keys)."""
NAME_PARAM: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
"""Methods whose request carries an `Mcp-Name` header, and the param it mirrors."""


def unframe(body: bytes) -> bytes:
    """The JSON-RPC reply in a body that is plain JSON or a stream of SSE events (other events are skipped)."""
    if not body or body[:1] == b"{":
        return body
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(
            line[6:] if line[5:6] == b" " else line[5:] for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if not data.startswith(b"{"):
            continue
        with contextlib.suppress(orjson.JSONDecodeError):
            message = orjson.loads(data)
            if "id" in message and ("result" in message or "error" in message):
                return data
    return body


class HandshakeClient(RawClient):
    """The 2025-11-25 era (initialize, `Mcp-Session-Id`), replies read whether JSON or SSE."""

    async def post(self, body: bytes) -> tuple[int, bytes, str | None]:
        status, reply, session_id = await super().post(body)
        return status, unframe(reply), session_id


class ModernClient(RawClient):
    """The stateless 2026-07-28 era: no handshake; every request carries the envelope and the routing headers.

    The load generator's session set-up (initialize, then notifications/initialized) is answered here without a
    request, since this era has nothing to set up; its calls are rewritten with the envelope and sent.
    """

    def use_session(self, session_id: str) -> None:
        """Nothing to use: requests of this era carry no session."""

    async def post(self, body: bytes) -> tuple[int, bytes, str | None]:
        message = orjson.loads(body)
        method = message.get("method")
        if method == "initialize":
            return 200, b"{}", STATELESS
        if "id" not in message:
            return 202, b"", None
        params = message.setdefault("params", {})
        params["_meta"] = {**params.get("_meta", {}), **ENVELOPE}
        headers = f"MCP-Protocol-Version: {MODERN}\r\nMcp-Method: {method}\r\n"
        if method in NAME_PARAM:
            headers += f"Mcp-Name: {params[NAME_PARAM[method]]}\r\n"
        data = orjson.dumps(message)
        request = self._head + headers.encode() + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
        status, reply, _ = await self._send(request)
        return status, unframe(reply), None

    async def delete(self) -> None:
        """Nothing to end: no session."""


def client_for(era: str, url: str) -> HandshakeClient | ModernClient:
    return ModernClient(url) if era == MODERN else HandshakeClient(url)


def register() -> None:
    """Make both era clients selectable by name in this process's load generator."""
    CLIENTS.update({ERA_CLIENT[HANDSHAKE]: HandshakeClient, ERA_CLIENT[MODERN]: ModernClient})


def worker_main(config_json: str) -> None:
    """A load-generator process: loadgen's own, with the era clients registered."""
    register()
    load_main(config_json)


class RequestFailed(Exception):
    """A request of `McpSession` got no reply in time, or a reply that is not a success."""


class McpSession:
    """One MCP client session of either era, driven from this process; every request has a deadline."""

    def __init__(self, url: str, era: str, timeout: float) -> None:
        self.client = client_for(era, url)
        self.timeout = timeout
        self.session_id: str | None = None
        self._ids = 0

    async def _post(self, body: bytes, what: str) -> tuple[int, bytes, str | None]:
        try:
            return await asyncio.wait_for(self.client.post(body), self.timeout)
        except TimeoutError:
            self.client.abort()
            raise RequestFailed(f"{what}: no answer within {self.timeout:g} s") from None
        except self.client.errors as exc:
            raise RequestFailed(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def open(self) -> None:
        status, body, session_id = await self._post(orjson.dumps(INITIALIZE), "initialize")
        if status != 200 or session_id is None:
            raise RequestFailed(f"initialize: HTTP {status}, session id {session_id!r}: {body[:200]!r}")
        self.client.use_session(session_id)
        self.session_id = session_id
        status, body, _ = await self._post(INITIALIZED, "notifications/initialized")
        if status not in (200, 202, 204):
            raise RequestFailed(f"notifications/initialized: HTTP {status}: {body[:200]!r}")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The result of one request, after checking the status, the id and that it is no error."""
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        status, body, _ = await self._post(orjson.dumps(message), method)
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RequestFailed(f"{method}: HTTP {status}, not JSON: {body[:200]!r}") from None
        if "error" in reply:
            error = reply["error"]
            raise RequestFailed(f"{method}: HTTP {status}, JSON-RPC error {error.get('code')}: {error.get('message')}")
        if status != 200 or reply.get("id") != self._ids or not isinstance(reply.get("result"), dict):
            raise RequestFailed(f"{method}: HTTP {status}, unexpected reply: {body[:200]!r}")
        result: dict[str, Any] = reply["result"]
        return result

    async def call(self, tool: str, message: str) -> None:
        """Call a tool that echoes `message`; fail unless it did."""
        result = await self.request("tools/call", {"name": tool, "arguments": {"message": message}})
        content = result.get("content") or [{}]
        if result.get("isError") or content[0].get("text") != message:
            raise RequestFailed(f"tools/call {tool}: did not echo {message!r}: {orjson.dumps(result)[:200]!r}")

    async def list_tools(self) -> list[str]:
        """Every tool name, following `nextCursor` to the last page."""
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await self.request("tools/list", {"cursor": cursor} if cursor else None)
            names += [tool["name"] for tool in page["tools"]]
            cursor = page.get("nextCursor")
            if not cursor:
                return names

    async def close(self) -> None:
        """End the session (DELETE, within the deadline; a failure to end it is not the measurement's business)."""
        if self.session_id is not None:
            try:
                await asyncio.wait_for(self.client.delete(), self.timeout)
            except self.client.errors:
                self.client.abort()
        await self.client.close()
