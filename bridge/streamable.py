"""The streamable-HTTP MCP endpoint (`/mcp`), for clients of both protocol eras.

Handshake era (2025-11-25 and older): `initialize` opens a session named by `Mcp-Session-Id`; POST carries one
message; a reply goes back as one JSON body unless the server sends something for that call first (progress, a
sampling request), in which case the reply streams as SSE; GET opens the session's stream; DELETE ends it.
Modern era (2026-07-28, chosen per request by the `MCP-Protocol-Version` header): no session, each POST is one
self-contained request checked with the SDK's own envelope rules; `server/discover` is answered from the server's
handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import orjson

from bridge.asgi import (
    SSE_KEEPALIVE,
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    send_json,
    sse_event,
    start_sse,
    wait_disconnect,
)
from bridge.eras import HANDSHAKE_VERSIONS, MODERN_VERSIONS, check_envelope, http_status, strip_envelope
from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange
from bridge.jsonrpc import (
    CONNECTION_CLOSED,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    OVERLOADED,
    PARSE_ERROR,
    REQUEST_TIMEOUT,
    UNSUPPORTED_PROTOCOL_VERSION,
    Message,
    error_bytes,
    result_bytes,
)
from bridge.listen import serve_listen
from bridge.sessions import ModernPeer, Session
from bridge.state import BridgeState

__all__ = ["StreamableHTTPEndpoint", "respond"]

logger = logging.getLogger(__name__)

REMOVED_IN_MODERN: Final = frozenset(
    {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
)
"""Methods protocol 2026-07-28 dropped; a modern client sending one is told so instead of reaching the server."""

DISCONNECT_WATCH_AFTER: Final = 1.0
"""Seconds a request may take before the bridge starts watching for its client to disconnect."""

_MODERN_VERSIONS: Final = frozenset(v.encode() for v in MODERN_VERSIONS)
_HANDSHAKE_VERSIONS: Final = frozenset(v.encode() for v in HANDSHAKE_VERSIONS)


class _ClientGone(Exception):
    """The client closed its connection before the reply."""


async def respond(
    state: BridgeState,
    exchange: Exchange,
    receive: Receive,
    send: Send,
    *,
    sse_ok: bool,
) -> str:
    """Answer one request: a single JSON body when the reply comes first, else an SSE stream ending with the reply.

    Returns the outcome for the metrics. A reply that does not come within the request timeout is an error that
    names the flag to raise; a client that leaves before its reply (how 2026-07-28 clients cancel) stops waiting.
    Either way the server is told to stop working on the request. Fast replies pay for none of this watching.
    """
    loop = asyncio.get_running_loop()
    timeout = state.settings.request_timeout
    deadline = loop.time() + timeout
    watcher: asyncio.Future[None] | None = None

    async def pull() -> tuple[bytes, bool]:
        nonlocal watcher
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            item = await exchange.next(remaining if watcher is not None else min(remaining, DISCONNECT_WATCH_AFTER))
            if item is not None:
                return item
            if watcher is None:
                watcher = asyncio.ensure_future(wait_disconnect(receive))
                watcher.add_done_callback(lambda _: exchange.wake())
            elif watcher.done():
                raise _ClientGone

    streaming = False
    try:
        # The common case, a reply within the first second, takes no closure call and no watcher.
        item = await exchange.next(min(timeout, DISCONNECT_WATCH_AFTER))
        data, final = item if item is not None else await pull()
        if not final and sse_ok:
            streaming = True
            await start_sse(send)
            await send({"type": "http.response.body", "body": sse_event(data), "more_body": True})
        while not final:
            data, final = await pull()
            if streaming:
                await send({"type": "http.response.body", "body": sse_event(data), "more_body": not final})
    except _ClientGone:
        state.backend.cancel(exchange, "the client closed its connection")
        return "disconnected"
    except TimeoutError:
        state.backend.cancel(exchange, f"timed out after {timeout:.0f} s")
        data = error_bytes(
            exchange.client_id,
            REQUEST_TIMEOUT,
            f"The MCP server did not answer {exchange.method} within {timeout:.0f} s; "
            "raise --request-timeout if it needs longer.",
        )
        if streaming:
            await send({"type": "http.response.body", "body": sse_event(data), "more_body": False})
        else:
            await send_json(send, 200, data)
        return "timeout"
    finally:
        if watcher is not None:
            watcher.cancel()
    if not streaming:
        status = 200
        if exchange.modern and exchange.error_code is not None:
            status = http_status(exchange.error_code)
        await send_json(send, status, data)
    return "ok" if exchange.error_code is None else "error"


class StreamableHTTPEndpoint:
    """ASGI app for `/mcp`."""

    def __init__(self, state: BridgeState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        refusal = self.state.guard.check(
            headers[b"host"].decode() if b"host" in headers else None,
            headers[b"origin"].decode() if b"origin" in headers else None,
        )
        if refusal is not None:
            await send_json(send, refusal[0], error_bytes(None, INVALID_REQUEST, refusal[1]))
            return
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send, headers)
        elif method == "GET":
            await self._get(receive, send, headers)
        elif method == "DELETE":
            await self._delete(send, headers)
        else:
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, POST, DELETE")]})
            await send({"type": "http.response.body", "body": b""})

    async def _post(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        state = self.state
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            await _reject(send, 415, INVALID_REQUEST, "Content-Type must be application/json.")
            return
        accept = headers.get(b"accept", b"*/*")
        sse_ok = b"text/event-stream" in accept or b"*/*" in accept
        if not (sse_ok or b"application/json" in accept):
            await _reject(send, 406, INVALID_REQUEST, "Accept must include application/json and text/event-stream.")
            return
        body = await read_body(receive, state.settings.max_body_bytes)
        if body is None:
            await _reject(
                send,
                413,
                INVALID_REQUEST,
                f"The request body exceeds {state.settings.max_body_bytes} bytes (--max-body-bytes).",
            )
            return
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await _reject(send, 400, PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc}).")
            return
        version = headers.get(b"mcp-protocol-version")
        if version in _MODERN_VERSIONS:
            await self._modern(scope, receive, send, message, headers, sse_ok)
            return
        if version is not None and version not in _HANDSHAKE_VERSIONS:
            await _reject(
                send,
                400,
                UNSUPPORTED_PROTOCOL_VERSION,
                f"Unsupported MCP-Protocol-Version {version.decode(errors='replace')!r}; this bridge speaks "
                f"{', '.join((*HANDSHAKE_VERSIONS, *MODERN_VERSIONS))}.",
            )
            return
        if type(message) is list:
            await _reject(
                send,
                400,
                INVALID_REQUEST,
                "JSON-RPC batches are not supported (protocol 2025-06-18 removed them); send one message per POST.",
            )
            return
        if type(message) is not dict or message.get("jsonrpc") != "2.0":
            await _reject(send, 400, INVALID_REQUEST, 'The body must be one JSON-RPC 2.0 object ("jsonrpc": "2.0").')
            return
        if message.get("method") == "initialize" and "id" in message:
            await self._initialize(send, message)
            return
        session_id = headers.get(b"mcp-session-id")
        if session_id is None:
            await _reject(
                send,
                400,
                INVALID_REQUEST,
                "Missing Mcp-Session-Id header: send initialize first and repeat the session id it returns.",
            )
            return
        session = state.sessions.get_or_adopt(session_id.decode(errors="replace"))
        if session is None:
            await _reject(
                send,
                404,
                INVALID_REQUEST,
                "Session not found: it expired, was deleted, or the bridge restarted. Start a new one with initialize.",
            )
            return
        if "method" in message:
            if "id" in message:
                await self._request(receive, send, session, message, sse_ok, headers)
                return
            state.backend.notify(session, message)
        elif "id" in message and ("result" in message or "error" in message):
            if not state.backend.answer(session, message):
                logger.info("Session %s answered request %r, which was not asked of it.", session.id[:8], message["id"])
        else:
            await _reject(
                send, 400, INVALID_REQUEST, "The body is neither a JSON-RPC request, notification nor response."
            )
            return
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def _initialize(self, send: Send, message: Message) -> None:
        state = self.state
        started = time.perf_counter()
        if state.draining:
            await _reject(send, 503, OVERLOADED, "The bridge is shutting down; connect to another replica.")
            return
        if state.sessions.full():
            await _reject(
                send,
                503,
                OVERLOADED,
                f"Too many sessions ({state.settings.max_sessions}, --max-sessions); retry later or end idle ones.",
            )
            return
        session = Session("streamable-http")
        state.sessions.add(session)
        try:
            reply = await state.backend.initialize(session, message, state.settings.startup_timeout)
        except ServerUnavailable as exc:
            await state.sessions.close(session)
            state.metrics.observe("initialize", "unavailable", time.perf_counter() - started)
            await send_json(send, 503, error_bytes(message["id"], CONNECTION_CLOSED, str(exc)))
            return
        state.sessions.seal(session)
        state.metrics.observe("initialize", "ok", time.perf_counter() - started)
        await send_json(send, 200, reply, [(b"mcp-session-id", session.id.encode())])

    async def _request(
        self,
        receive: Receive,
        send: Send,
        session: Session,
        message: Message,
        sse_ok: bool,
        headers: dict[bytes, bytes],
    ) -> None:
        state = self.state
        method = message["method"]
        started = time.perf_counter()
        if len(session.inflight) >= state.settings.max_inflight_per_session:
            state.metrics.observe(method, "rejected", time.perf_counter() - started)
            await send_json(
                send,
                429,
                error_bytes(
                    message["id"],
                    OVERLOADED,
                    f"This session already has {len(session.inflight)} requests in flight "
                    "(--max-inflight-per-session); wait for some to finish.",
                ),
            )
            return
        if message["id"] in session.inflight:
            await _reject(
                send, 400, INVALID_REQUEST, f"Request id {message['id']!r} is already in flight in this session."
            )
            return
        exchange = Exchange(session, message["id"], method)
        exchange.headers = headers
        try:
            state.backend.call(session, exchange, message)
        except ServerUnavailable as exc:
            state.metrics.observe(method, "unavailable", time.perf_counter() - started)
            await send_json(send, 200, error_bytes(message["id"], CONNECTION_CLOSED, str(exc)))
            return
        outcome = await respond(state, exchange, receive, send, sse_ok=sse_ok)
        state.metrics.observe(method, outcome, time.perf_counter() - started)

    async def _modern(
        self, scope: Scope, receive: Receive, send: Send, message: Any, headers: dict[bytes, bytes], sse_ok: bool
    ) -> None:
        state = self.state
        if state.backend.per_session:
            # Per-session mode needs a session, which 2026-07-28 has none of: clients fall back to the handshake.
            await _reject(
                send,
                400,
                UNSUPPORTED_PROTOCOL_VERSION,
                "This bridge runs --session-mode per-session, which needs the initialize handshake; "
                "use protocol 2025-11-25.",
                {"supported": list(reversed(HANDSHAKE_VERSIONS)), "requested": "2026-07-28"},
            )
            return
        if type(message) is not dict or message.get("jsonrpc") != "2.0":
            await _reject(send, 400, INVALID_REQUEST, "The body must be one JSON-RPC 2.0 request or notification.")
            return
        if "id" not in message:
            # 2026-07-28 defines no client notifications over HTTP; acknowledged and dropped, as the SDK does.
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        request_id = message["id"]
        refusal = await check_envelope(message, scope["headers"])
        if refusal is not None:
            status, code, text, data = refusal
            await send_json(send, status, error_bytes(request_id, code, text, data))
            return
        method = message.get("method")
        started = time.perf_counter()
        if method == "server/discover":
            try:
                await send_json(send, 200, result_bytes(request_id, state.backend.discover_result()))
            except ServerUnavailable as exc:
                await send_json(send, 503, error_bytes(request_id, CONNECTION_CLOSED, str(exc)))
            return
        if method in REMOVED_IN_MODERN:
            await send_json(send, 404, error_bytes(request_id, METHOD_NOT_FOUND, "Method not found", method))
            return
        if method == "subscriptions/listen":
            await self._listen(receive, send, message, sse_ok)
            return
        strip_envelope(message)
        peer = ModernPeer()
        exchange = Exchange(peer, request_id, str(method), modern=True)
        exchange.headers = headers
        try:
            state.backend.call(peer, exchange, message)
        except ServerUnavailable as exc:
            state.metrics.observe(str(method), "unavailable", time.perf_counter() - started)
            await send_json(send, 200, error_bytes(request_id, CONNECTION_CLOSED, str(exc)))
            return
        outcome = await respond(state, exchange, receive, send, sse_ok=sse_ok)
        state.metrics.observe(str(method), outcome, time.perf_counter() - started)

    async def _listen(self, receive: Receive, send: Send, message: Message, sse_ok: bool) -> None:
        state = self.state
        if not sse_ok:
            await _reject(
                send,
                406,
                INVALID_REQUEST,
                "subscriptions/listen answers with an event stream: accept text/event-stream.",
            )
            return
        try:
            capabilities = state.backend.discover_result()["capabilities"]
        except ServerUnavailable as exc:
            await send_json(send, 503, error_bytes(message["id"], CONNECTION_CLOSED, str(exc)))
            return
        await serve_listen(state.backend, capabilities, message, receive, send, state.drain)

    async def _get(self, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        if b"text/event-stream" not in headers.get(b"accept", b""):
            await _reject(send, 406, INVALID_REQUEST, "Accept must include text/event-stream to open the stream.")
            return
        session = await self._session(send, headers)
        if session is None:
            return
        if session.stream_readers:
            await _reject(send, 409, INVALID_REQUEST, "This session already has a stream open; close it first.")
            return
        await stream_session(session, receive, send, first=None)

    async def _delete(self, send: Send, headers: dict[bytes, bytes]) -> None:
        session = await self._session(send, headers)
        if session is None:
            return
        await self.state.sessions.close(session)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def _session(self, send: Send, headers: dict[bytes, bytes]) -> Session | None:
        session_id = headers.get(b"mcp-session-id")
        session = self.state.sessions.get_or_adopt(session_id.decode(errors="replace")) if session_id else None
        if session is None:
            status = 400 if session_id is None else 404
            await _reject(send, status, INVALID_REQUEST, "Session not found: send initialize to start a session.")
        return session


async def stream_session(session: Session, receive: Receive, send: Send, *, first: bytes | None) -> None:
    """Stream a session's messages as SSE until the client leaves or the session ends; ping while idle."""
    session.stream_readers += 1
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await start_sse(send)
        if first is not None:
            await send({"type": "http.response.body", "body": first, "more_body": True})
        while True:
            nxt = asyncio.ensure_future(session.next_message())
            done, _ = await asyncio.wait({nxt, disconnect}, timeout=SSE_KEEPALIVE, return_when=asyncio.FIRST_COMPLETED)
            if disconnect in done:
                nxt.cancel()
                return
            if not done:
                nxt.cancel()
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                continue
            data = nxt.result()
            if data is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send({"type": "http.response.body", "body": sse_event(data), "more_body": True})
    except OSError:
        return
    finally:
        session.stream_readers -= 1
        disconnect.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await disconnect


async def _reject(send: Send, status: int, code: int, message: str, data: Any = None) -> None:
    await send_json(send, status, error_bytes(None, code, message, data))
