"""Small raw-ASGI helpers for the MCP endpoints: reading a bounded body, JSON and SSE responses, disconnect watching.

The MCP endpoints bypass Starlette's Request/Response objects: on the hot path every microsecond per call counts,
and these few helpers are all the HTTP the relay needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = [
    "SSE_KEEPALIVE",
    "Receive",
    "Scope",
    "Send",
    "header_map",
    "read_body",
    "send_json",
    "sse_event",
    "start_sse",
    "wait_disconnect",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SSE_KEEPALIVE: Final = 15.0
"""Seconds between SSE comment pings on an idle stream, so proxies with idle-read timeouts keep it open."""

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def header_map(scope: Scope) -> dict[bytes, bytes]:
    """Request headers by lowercase name (ASGI already lowercases them); a repeated header keeps its last value."""
    return dict(scope["headers"])


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """Read the whole request body, or None as soon as it exceeds `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    fields = [*_JSON_HEADERS, (b"content-length", b"%d" % len(body))]
    if headers:
        fields += headers
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


async def start_sse(send: Send, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + headers if headers else _SSE_HEADERS}
    )


def sse_event(data: bytes, event: bytes = b"message") -> bytes:
    return b"event: " + event + b"\ndata: " + data + b"\n\n"


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone away (only valid after the request body was read)."""
    while (await receive())["type"] != "http.disconnect":
        pass
