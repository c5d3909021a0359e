"""Serves a REST API as MCP tools: `tools/list` from pages built once, `tools/call` as one HTTP request each.

There is no process to supervise and no server-side session: every client session shares the same tools, one HTTP
client (`bridge.http1`, keep-alive connections per origin), and the same credentials. Tool calls run as tasks so
that a client's cancellation, a closed session or the request timeout stops the HTTP request too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from bridge.calls import CallTasks
from bridge.eras import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, discover_result, modern_result
from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange, Peer
from bridge.http1 import Client
from bridge.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, Message, error_bytes, result_bytes
from bridge.openapi.auth import Credentials
from bridge.openapi.invoke import Invoker
from bridge.openapi.loader import SYNC_VALIDATION_LIMIT, Spec
from bridge.openapi.tools import Operation
from bridge.sessions import Session

__all__ = ["OpenAPIBackend"]

logger = logging.getLogger(__name__)

INSTRUCTIONS_LIMIT: Final = 4000
"""Characters of the spec's description offered as the server's instructions."""

VALIDATION_NICENESS: Final = 10
"""Scheduling priority of the background validation of a large spec: below the bridge's own."""

CAPABILITIES: Final = {"tools": {"listChanged": False}}


class OpenAPIBackend:
    """The OpenAPI side of the bridge: tool listing, argument checking, calls, and their cancellation."""

    per_session = False
    gave_up: str | None = None

    def __init__(
        self,
        spec: Spec,
        operations: list[Operation],
        *,
        base_url: str,
        page_size: int,
        request_timeout: float,
        max_response_bytes: int,
        forward_headers: tuple[str, ...],
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        info = spec.document.get("info") or {}
        self._server_info = {"name": str(info.get("title") or "openapi"), "version": str(info.get("version") or "")}
        self._instructions = str(info.get("description") or "")[:INSTRUCTIONS_LIMIT]
        self._operations = {op.tool["name"]: op for op in operations}
        tools = [op.tool for op in operations]
        self._pages = [tools[start : start + page_size] for start in range(0, len(tools), page_size)] or [[]]
        self._page_bytes: dict[tuple[int, bool], bytes] = {}
        self._base_url = base_url
        self._timeout = request_timeout
        self._max_response_bytes = max_response_bytes
        self._forward = tuple(name.lower().encode() for name in forward_headers)
        schemes = (spec.document.get("components") or {}).get("securitySchemes") or {}
        self._credentials = Credentials(schemes, environ, base_url)
        self._invoker: Invoker | None = None
        self._client: Client | None = None
        self._calls = CallTasks()
        self._spec_source = spec.source
        self._validate_later = spec.size > SYNC_VALIDATION_LIMIT
        self._validation: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._invoker is not None

    @property
    def inflight(self) -> int:
        return len(self._calls)

    async def start(self) -> None:
        # No cookie jar: cookies come from the spec's parameters and credentials, never from earlier responses.
        self._client = Client()
        self._invoker = Invoker(
            self._base_url,
            self._client,
            self._credentials,
            max_response_bytes=self._max_response_bytes,
            timeout=self._timeout,
        )
        if self._validate_later:
            self._validation = asyncio.create_task(self._validate(), name="spec-validation")

    async def _validate(self) -> None:
        """Validate a large spec in a low-priority process of its own, so serving keeps its core; log the result."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "openapi", "--spec", self._spec_source, "--check",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, process.pid, VALIDATION_NICENESS)
        try:
            output, _ = await process.communicate()
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        for line in output.decode(errors="replace").splitlines():
            (logger.info if process.returncode == 0 else logger.warning)("Spec validation: %s", line)

    async def stop(self) -> None:
        if self._validation is not None:
            self._validation.cancel()
            await asyncio.gather(self._validation, return_exceptions=True)
        await self._calls.stop()
        self._invoker = None
        if self._client is not None:
            self._client.close()

    async def initialize(self, session: Session, message: Message, timeout: float) -> bytes:
        params = message.get("params") or {}
        session.capabilities = params.get("capabilities") or {}
        requested = params.get("protocolVersion")
        version = requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION
        session.protocol_version = version
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": CAPABILITIES,
            "serverInfo": self._server_info,
        }
        if self._instructions:
            result["instructions"] = self._instructions
        return result_bytes(message["id"], result)

    def call(self, peer: Peer, exchange: Exchange, message: Message) -> None:
        if self._invoker is None:
            raise ServerUnavailable("The bridge is starting or stopping; retry shortly.")
        method = exchange.method
        params = message.get("params") or {}
        if method == "tools/list":
            exchange.push(self._list_page(exchange, params.get("cursor")), final=True)
        elif method == "tools/call":
            self._start_call(peer, exchange, params)
        elif method == "ping":
            exchange.push(result_bytes(exchange.client_id, {}), final=True)
        else:
            exchange.fail(METHOD_NOT_FOUND, f"{method} is not served: this bridge offers tools only.")

    def _list_page(self, exchange: Exchange, cursor: Any) -> bytes:
        index = 0
        if cursor is not None:
            if not (isinstance(cursor, str) and cursor.isdigit() and int(cursor) < len(self._pages)):
                return error_bytes(
                    exchange.client_id, INVALID_PARAMS, f"Unknown cursor {cursor!r}; list from the start."
                )
            index = int(cursor)
        key = (index, exchange.modern)
        page = self._page_bytes.get(key)
        if page is None:
            result: dict[str, Any] = {"tools": self._pages[index]}
            if index + 1 < len(self._pages):
                result["nextCursor"] = str(index + 1)
            if exchange.modern:
                modern_result("tools/list", result)
            page = self._page_bytes[key] = orjson.dumps(result)
        return b'{"jsonrpc":"2.0","id":' + orjson.dumps(exchange.client_id) + b',"result":' + page + b"}"

    def _start_call(self, peer: Peer, exchange: Exchange, params: Mapping[str, Any]) -> None:
        name = params.get("name")
        operation = self._operations.get(name) if isinstance(name, str) else None
        if operation is None:
            exchange.fail(INVALID_PARAMS, f"Unknown tool {name!r}; tools/list shows the tools this bridge serves.")
            return
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            exchange.fail(INVALID_PARAMS, "Tool arguments must be a JSON object.")
            return
        forwarded = {
            key.decode(): value.decode("latin-1") for key, value in exchange.headers.items() if key in self._forward
        }
        self._calls.start(peer, exchange, self._run(exchange, operation, arguments, forwarded))

    async def _run(
        self, exchange: Exchange, operation: Operation, arguments: Mapping[str, Any], forwarded: Mapping[str, str]
    ) -> None:
        assert self._invoker is not None
        try:
            result = await self._invoker.call(operation, arguments, forwarded)
        except Exception:
            logger.exception("Calling %s failed inside the bridge", operation.tool["name"])
            result = {
                "content": [{"type": "text", "text": "The bridge failed to make this call; see its log."}],
                "isError": True,
            }
        if exchange.modern:
            modern_result("tools/call", result)
        exchange.push(result_bytes(exchange.client_id, result), final=True)

    def cancel(self, exchange: Exchange, reason: str) -> None:
        self._calls.cancel(exchange)

    def notify(self, peer: Peer, message: Message) -> None:
        self._calls.cancelled_by_client(peer, message)

    def answer(self, peer: Peer, message: Message) -> bool:
        return False

    async def close_session(self, session: Session) -> None:
        self._calls.cancel_all(session)

    def discover_result(self) -> dict[str, Any]:
        return discover_result(CAPABILITIES, self._server_info, self._instructions, cache_scope="public")

    def watch(self, listener: Callable[[Message], None], uris: set[str]) -> Callable[[], None]:
        """A REST API announces no changes; a listen stream only gets its acknowledgement."""
        return lambda: None
