"""A request in flight and the client it belongs to, as every backend and transport sees them.

An exchange queues what the server sends for one request (progress, log lines, server-to-client requests) and ends
with the reply; the HTTP transport decides whether that becomes one JSON body or an event stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, Protocol

from bridge.jsonrpc import RequestId, error_bytes

__all__ = ["Exchange", "Peer"]

logger = logging.getLogger(__name__)

EXCHANGE_BACKLOG: Final = 256
"""Messages (progress, server requests) held for one request whose client reads slowly; more are dropped."""


class Peer(Protocol):
    """A client session as the relay sees it."""

    back_channel: bool
    """Whether server-to-client requests (sampling, elicitation, roots) can reach this client."""
    inflight: dict[RequestId, Exchange]
    subscriptions: set[str]
    log_level: str | None

    def deliver(self, data: bytes) -> None:
        """Hand over a message that answers no request of this client (list_changed, logs, server requests)."""


class Exchange:
    """One client request on its way to the server, and every message the server sends back for it."""

    __slots__ = (
        "_backlog",
        "_waiter",
        "child_id",
        "client_id",
        "client_token",
        "done",
        "error_code",
        "headers",
        "method",
        "modern",
        "peer",
    )

    def __init__(self, peer: Peer | None, client_id: RequestId, method: str, *, modern: bool = False) -> None:
        self.peer = peer
        self.client_id = client_id
        self.method = method
        self.modern = modern
        self.child_id = -1
        self.client_token: Any = None
        self.done = False
        self.headers: Mapping[bytes, bytes] = {}
        """The client's HTTP request headers, for backends allowed to forward some of them."""
        self.error_code: int | None = None
        """The JSON-RPC error code of the reply, if it was an error."""
        self._backlog: deque[tuple[bytes, bool]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def push(self, data: bytes, final: bool = False) -> None:
        """Queue a message for the client; the final one is the reply and ends the exchange."""
        if self.done:
            return
        if final:
            self.done = True
            if self.peer is not None:
                self.peer.inflight.pop(self.client_id, None)
        elif len(self._backlog) >= EXCHANGE_BACKLOG:
            logger.warning("Dropped a %s notification: the client is not reading its stream.", self.method)
            return
        self._backlog.append((data, final))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, code: int, message: str) -> None:
        """End the exchange with a JSON-RPC error naming the cause."""
        if not self.done:
            self.error_code = code
        self.push(error_bytes(self.client_id, code, message), final=True)

    async def next(self, timeout: float | None = None) -> tuple[bytes, bool] | None:
        """Wait for the next message and whether it is the reply.

        Returns None when `timeout` passes first or `wake()` is called, so the caller can check on its client.
        """
        if not self._backlog:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, self.wake) if timeout is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if not self._backlog:
                return None
        return self._backlog.popleft()

    def wake(self) -> None:
        """Make a pending `next()` return None now."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
