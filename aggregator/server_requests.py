"""Requests an upstream sends to the client (sampling, elicitation, roots), carried to the one client they are for.

Many clients share one upstream session, so a server request is only forwarded when its client is known: the client
whose call it arrived with, else the only client with calls in flight to that target. Each forwarded request gets
an id of the aggregator's own (clients choose theirs freely), and the client's answer goes back to the upstream
with the upstream's id. Anything that cannot be routed is refused with an error saying why, never left hanging.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Final

import orjson

from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import INVALID_REQUEST, METHOD_NOT_FOUND, Message

__all__ = ["ANSWER_TIMEOUT", "CLIENT_CAPABILITY", "ServerRequests"]

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT: Final = 600.0
"""Seconds a client has to answer: elicitation waits on a person."""

MAX_PENDING: Final = 1024
"""Server requests waiting for clients at once; more are refused so no upstream can pile them up."""

CLIENT_CAPABILITY: Final = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
"""The client capability each forwardable server request needs."""

UPSTREAM_CAPABILITIES: Final[dict[str, Any]] = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}}
"""Declared to every upstream: each request is forwarded to a client that has the capability, or refused."""


def _error(code: int, message: str) -> Message:
    return {"error": {"code": code, "message": message}}


class ServerRequests:
    """Server requests forwarded to clients and waiting for their answers."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[str, tuple[Peer, asyncio.Future[Message]]] = {}

    async def ask(self, target: str, message: Message, peer: Peer | None, exchange: Exchange | None) -> Message:
        """Forward `message` to `peer` (on `exchange`'s stream when given) and return its answer (`result`/`error`)."""
        method = str(message.get("method"))
        if method not in CLIENT_CAPABILITY:
            return _error(METHOD_NOT_FOUND, f"The aggregator does not forward {method} to clients.")
        if peer is None:
            return _error(
                INVALID_REQUEST,
                f"{method} from {target!r} cannot be routed: it came with no call, and not exactly one client has "
                "calls in flight to this target. Send it while handling a tools/call (related to that request).",
            )
        capability = CLIENT_CAPABILITY[method]
        if not peer.back_channel:
            return _error(INVALID_REQUEST, f"{method} cannot reach the client: it uses a protocol without them.")
        if capability not in (getattr(peer, "capabilities", None) or {}):
            return _error(METHOD_NOT_FOUND, f"The client did not declare the {capability!r} capability.")
        if len(self._waiting) >= MAX_PENDING:
            return _error(INVALID_REQUEST, f"{MAX_PENDING} requests already wait for clients; retry later.")
        request_id = f"plexus-{next(self._ids)}"
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (peer, future)
        data = orjson.dumps({**message, "id": request_id})
        if exchange is not None and not exchange.done:
            exchange.push(data)
        else:
            peer.deliver(data)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                return await future
        except TimeoutError:
            return _error(INVALID_REQUEST, f"The client did not answer {method} within {ANSWER_TIMEOUT:g} s.")
        finally:
            self._waiting.pop(request_id, None)

    def answer(self, peer: Peer, message: Message) -> bool:
        """Take a client's response; False when no request with its id was asked of that client."""
        request_id = message.get("id")
        waiting = self._waiting.get(request_id) if isinstance(request_id, str) else None
        if waiting is None or waiting[0] is not peer:
            return False
        future = waiting[1]
        if not future.done():
            future.set_result(message)
        return True

    def forget(self, peer: Peer) -> None:
        """A session ended: its unanswered requests are answered with an error now."""
        for owner, future in self._waiting.values():
            if owner is peer and not future.done():
                future.set_result(_error(INVALID_REQUEST, "The client session this request was for has ended."))
