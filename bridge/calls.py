"""Requests answered by a task each: REST calls of the OpenAPI bridge, hops of the aggregator.

A task per request lets a client's cancellation, a closed session or the request timeout stop the work; this keeps
that bookkeeping in one place for every backend that answers this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import INVALID_REQUEST, Message

__all__ = ["CallTasks"]


class CallTasks:
    """The tasks working on requests in flight, by exchange."""

    def __init__(self) -> None:
        self._tasks: dict[Exchange, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, peer: Peer, exchange: Exchange, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` for `exchange`; it must end the exchange (push the reply) itself."""
        peer.inflight[exchange.client_id] = exchange
        task = asyncio.create_task(work)
        self._tasks[exchange] = task
        task.add_done_callback(lambda _: self._tasks.pop(exchange, None))

    def cancel(self, exchange: Exchange) -> None:
        task = self._tasks.get(exchange)
        if task is not None:
            task.cancel()

    def cancelled_by_client(self, peer: Peer, message: Message) -> None:
        """Act on a client's `notifications/cancelled` for one of its own requests."""
        if message.get("method") != "notifications/cancelled":
            return
        params = message.get("params") or {}
        exchange = peer.inflight.get(params.get("requestId"))  # type: ignore[arg-type]  # any JSON id misses
        if exchange is not None:
            self.cancel(exchange)
            exchange.fail(INVALID_REQUEST, "Request cancelled by the client.")

    def cancel_all(self, peer: Peer) -> None:
        for exchange in list(peer.inflight.values()):
            self.cancel(exchange)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
