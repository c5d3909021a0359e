"""The legacy HTTP+SSE transport (protocol 2024-11-05) for old clients: `GET /sse` opens a session whose event stream
carries every server message, replies included; the first event names the URL to POST messages to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final
from urllib.parse import parse_qs

import orjson

from bridge.asgi import Receive, Scope, Send, header_map, read_body, send_json, sse_event
from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange
from bridge.jsonrpc import CONNECTION_CLOSED, INVALID_REQUEST, OVERLOADED, PARSE_ERROR, REQUEST_TIMEOUT, error_bytes
from bridge.sessions import Session
from bridge.state import BridgeState
from bridge.streamable import stream_session

__all__ = ["MESSAGES_PATH", "SSEEndpoint"]

logger = logging.getLogger(__name__)

MESSAGES_PATH: Final = "/messages/"


class SSEEndpoint:
    """ASGI app serving both `GET /sse` and `POST /messages/?session_id=...`."""

    def __init__(self, state: BridgeState) -> None:
        self.state = state
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        refusal = self.state.guard.check(
            headers[b"host"].decode() if b"host" in headers else None,
            headers[b"origin"].decode() if b"origin" in headers else None,
        )
        if refusal is not None:
            await send_json(send, refusal[0], error_bytes(None, INVALID_REQUEST, refusal[1]))
        elif scope["method"] == "GET" and scope["path"].rstrip("/") == "/sse":
            await self._open(scope, receive, send)
        elif scope["method"] == "POST" and scope["path"] == MESSAGES_PATH:
            await self._message(scope, receive, send)
        else:
            await send({"type": "http.response.start", "status": 405, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if state.draining or state.sessions.full():
            await send_json(
                send, 503, error_bytes(None, OVERLOADED, "No more sessions can be opened now; retry later.")
            )
            return
        session = Session("sse")
        state.sessions.add(session)
        endpoint = f"{scope.get('root_path', '').rstrip('/')}{MESSAGES_PATH}?session_id={session.id}"
        try:
            await stream_session(session, receive, send, first=sse_event(endpoint.encode(), b"endpoint"))
        finally:
            await state.sessions.close(session)

    async def _message(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        session_id = parse_qs(scope.get("query_string", b"").decode()).get("session_id", [""])[0]
        session = state.sessions.get(session_id)
        if session is None or session.transport != "sse":
            await send_json(send, 404, error_bytes(None, INVALID_REQUEST, "Session not found: reconnect to /sse."))
            return
        body = await read_body(receive, state.settings.max_body_bytes)
        if body is None:
            await send_json(
                send, 413, error_bytes(None, INVALID_REQUEST, "The request body is too large (--max-body-bytes).")
            )
            return
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await send_json(
                send, 400, error_bytes(None, PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc}).")
            )
            return
        if type(message) is not dict or message.get("jsonrpc") != "2.0":
            await send_json(send, 400, error_bytes(None, INVALID_REQUEST, "The body must be one JSON-RPC 2.0 object."))
            return
        if "method" in message and "id" in message:
            task = asyncio.create_task(self._request(session, message, header_map(scope)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif "method" in message:
            state.backend.notify(session, message)
        else:
            state.backend.answer(session, message)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"Accepted"})

    async def _request(self, session: Session, message: dict[str, object], headers: dict[bytes, bytes]) -> None:
        """Run one request and put everything it produces on the session's event stream."""
        state = self.state
        method = str(message["method"])
        request_id = message["id"]
        assert isinstance(request_id, str | int)
        started = time.perf_counter()
        if method == "initialize":
            try:
                session.push(await state.backend.initialize(session, message, state.settings.startup_timeout))
            except ServerUnavailable as exc:
                session.push(error_bytes(request_id, CONNECTION_CLOSED, str(exc)))
            return
        exchange = Exchange(session, request_id, method)
        exchange.headers = headers
        try:
            state.backend.call(session, exchange, message)
        except ServerUnavailable as exc:
            session.push(error_bytes(request_id, CONNECTION_CLOSED, str(exc)))
            state.metrics.observe(method, "unavailable", time.perf_counter() - started)
            return
        outcome = "ok"
        try:
            async with asyncio.timeout(state.settings.request_timeout):
                final = False
                while not final:
                    item = await exchange.next()
                    assert item is not None  # no timeout given: only a message ends the wait
                    data, final = item
                    session.push(data)
            outcome = "ok" if exchange.error_code is None else "error"
        except TimeoutError:
            state.backend.cancel(exchange, "timed out")
            session.push(
                error_bytes(
                    request_id, REQUEST_TIMEOUT, f"The MCP server did not answer {method} in time (--request-timeout)."
                )
            )
            outcome = "timeout"
        state.metrics.observe(method, outcome, time.perf_counter() - started)
