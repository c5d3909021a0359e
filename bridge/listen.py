"""`subscriptions/listen` (protocol 2026-07-28): the one stream on which a modern client hears about change.

The handshake-era server below broadcasts list_changed and resource updates to every session; a listen stream
picks out the kinds its client opted into, acknowledges them first, and tags every event with its subscription id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Final

import orjson

from bridge.asgi import SSE_KEEPALIVE, Receive, Send, sse_event, start_sse, wait_disconnect
from bridge.backend import Backend
from bridge.eras import SUBSCRIPTION_ID_KEY
from bridge.jsonrpc import Message, RequestId

__all__ = ["serve_listen"]

LISTEN_BACKLOG: Final = 256
"""Notifications held for a listen stream whose client reads slowly; the oldest are dropped past this."""

_LIST_CHANGED: Final = {
    "toolsListChanged": ("tools", "notifications/tools/list_changed"),
    "promptsListChanged": ("prompts", "notifications/prompts/list_changed"),
    "resourcesListChanged": ("resources", "notifications/resources/list_changed"),
}


def _honoured(requested: dict[str, Any], capabilities: dict[str, Any]) -> tuple[dict[str, Any], set[str], set[str]]:
    """The filter the server can honour, the notification methods it admits, and the resource URIs."""
    honoured: dict[str, Any] = {}
    methods: set[str] = set()
    for key, (capability, method) in _LIST_CHANGED.items():
        if requested.get(key) and (capabilities.get(capability) or {}).get("listChanged"):
            honoured[key] = True
            methods.add(method)
    uris: set[str] = set()
    wanted = requested.get("resourceSubscriptions")
    if isinstance(wanted, list) and (capabilities.get("resources") or {}).get("subscribe"):
        uris = {uri for uri in wanted if isinstance(uri, str)}
        if uris:
            honoured["resourceSubscriptions"] = sorted(uris)
    return honoured, methods, uris


async def serve_listen(
    backend: Backend,
    capabilities: dict[str, Any],
    message: Message,
    receive: Receive,
    send: Send,
    stop: asyncio.Event,
) -> None:
    """Stream a listen subscription until the client closes it or the bridge drains (then end it gracefully)."""
    request_id: RequestId = message["id"]
    params = message.get("params") or {}
    honoured, methods, uris = _honoured(params.get("notifications") or {}, capabilities)
    tag = {SUBSCRIPTION_ID_KEY: request_id}
    backlog: deque[bytes] = deque(maxlen=LISTEN_BACKLOG)
    wake = asyncio.Event()

    def on_notification(notification: Message) -> None:
        method = notification.get("method")
        notification_params = notification.get("params") or {}
        if method in methods or (
            method == "notifications/resources/updated" and notification_params.get("uri") in uris
        ):
            tagged = {**notification, "params": {**notification_params, "_meta": tag}}
            backlog.append(sse_event(orjson.dumps(tagged)))
            wake.set()

    unwatch = backend.watch(on_notification, uris)
    disconnect = asyncio.ensure_future(wait_disconnect(receive))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await start_sse(send)
        ack = {
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": honoured, "_meta": tag},
        }
        await send({"type": "http.response.body", "body": sse_event(orjson.dumps(ack)), "more_body": True})
        while True:
            while backlog:
                await send({"type": "http.response.body", "body": backlog.popleft(), "more_body": True})
            wake.clear()
            waiter = asyncio.ensure_future(wake.wait())
            done, _ = await asyncio.wait(
                {waiter, disconnect, stopping}, timeout=SSE_KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if disconnect in done:
                return
            if stopping in done:
                final = {"jsonrpc": "2.0", "id": request_id, "result": {"resultType": "complete", "_meta": tag}}
                await send({"type": "http.response.body", "body": sse_event(orjson.dumps(final)), "more_body": False})
                return
            if not done:
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
    except OSError:
        return
    finally:
        unwatch()
        for task in (disconnect, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
