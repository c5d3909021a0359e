"""Keeps one stdio MCP server running behind a relay: connect, handshake, restart with backoff, give up on a crash
loop, stop politely.

A crash fails the requests in flight at once (the relay does that), readiness drops until the restarted server has
completed `initialize` again, and what clients had set up (log level, subscriptions) is replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange
from bridge.jsonrpc import Message
from bridge.stdio.framing import read_lines
from bridge.stdio.links import Link
from bridge.stdio.relay import Relay

__all__ = ["RestartPolicy", "Supervisor"]

logger = logging.getLogger(__name__)

STABLE_UPTIME: Final = 60.0
"""Seconds a server must stay up for its backoff to start over from the shortest delay."""


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor reacts to a server that exits."""

    initial_backoff: float = 0.1
    max_backoff: float = 30.0
    crash_loop_restarts: int = 5
    """Restarts allowed within `crash_loop_window` before the supervisor gives up."""
    crash_loop_window: float = 60.0
    handshake_timeout: float = 30.0
    """Seconds a (re)started server has to answer `initialize`; npx may have to download it first."""


class Supervisor:
    """Runs the server behind `relay` for as long as the bridge needs it."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Link]],
        relay: Relay,
        init_params: Message,
        policy: RestartPolicy,
        max_message_bytes: int,
        *,
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.relay = relay
        self.init_params = init_params
        self.init_result: dict[str, Any] | None = None
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self.gave_up: str | None = None
        self.restarts = 0
        self._connect = connect
        self._policy = policy
        self._max_message_bytes = max_message_bytes
        self._on_restart = on_restart
        self._link: Link | None = None
        self._stopping = False
        self._crashes: deque[float] = deque()

    async def run(self) -> None:
        """Start the server and keep it running until `stop()` or a crash loop; never raises for a server fault."""
        backoff = self._policy.initial_backoff
        try:
            while not self._stopping:
                started = time.monotonic()
                reason = await self._run_once()
                if self._stopping:
                    return
                if time.monotonic() - started > STABLE_UPTIME:
                    backoff = self._policy.initial_backoff
                if self._crash_loop():
                    self.gave_up = (
                        f"{reason} and has failed {len(self._crashes)} times within "
                        f"{self._policy.crash_loop_window:.0f} s, so the bridge stopped restarting it; fix the "
                        "server (its stderr is in the bridge log), then restart the bridge"
                    )
                    logger.error("Giving up: the MCP server %s.", self.gave_up)
                    self.relay.disconnect(self.gave_up)
                    return
                logger.warning("The MCP server %s; restarting in %.1f s.", reason, backoff)
                self.relay.disconnect(f"{reason} and is restarting; retry shortly")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._policy.max_backoff)
                self.restarts += 1
                self._on_restart()
        finally:
            self.stopped.set()

    async def _run_once(self) -> str:
        """Run the server once, from connect to exit; return how it ended."""
        try:
            link = await self._connect()
        except OSError as exc:
            return f"could not be started ({exc})"
        self._link = link
        self.relay.connect(link.write)
        reader = asyncio.create_task(self._pump(link), name="stdio-reader")
        try:
            await self._handshake()
        except (ServerUnavailable, TimeoutError) as exc:
            if not reader.done():
                # Alive but unable to initialize: stop it, and the restart policy decides what comes next.
                logger.error("The MCP server did not complete initialize (%s); stopping it.", exc or "timed out")
                await link.close()
        except asyncio.CancelledError:
            reader.cancel()
            raise
        reason = await reader
        self._link = None
        await link.close()
        # Unready only now that the old link is closed: a server restarting behind FIFOs must not meet it.
        self.ready.clear()
        return reason

    async def _pump(self, link: Link) -> str:
        """Route every line the server writes; when it is gone, fail what was in flight at once."""
        async for line in read_lines(link.reader, self._max_message_bytes):
            self.relay.receive(line)
        reason = await link.ended()
        self.relay.disconnect(reason)
        return reason

    async def _handshake(self) -> None:
        result = await self.call("initialize", self.init_params, timeout=self._policy.handshake_timeout)
        self.init_result = result
        self.relay.send({"method": "notifications/initialized"})
        for message in self.relay.restore():
            with contextlib.suppress(ServerUnavailable, TimeoutError):
                await self.call(message["method"], message["params"], timeout=self._policy.handshake_timeout)
        self.ready.set()

    async def call(self, method: str, params: Message, *, timeout: float) -> dict[str, Any]:
        """Send a request of the bridge's own and return its result; raises `ServerUnavailable` on an error reply."""
        exchange = Exchange(None, 0, method)
        self.relay.request(exchange, {"jsonrpc": "2.0", "method": method, "params": params})
        try:
            item = await exchange.next(timeout)
            if item is None:
                raise TimeoutError
        except TimeoutError:
            self.relay.cancel(exchange, f"no answer within {timeout:.0f} s")
            raise
        reply = orjson.loads(item[0])
        if "error" in reply:
            raise ServerUnavailable(f"{method} failed: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result") or {}
        return result

    async def stop(self) -> None:
        """Stop the server: close its input, then SIGTERM, then SIGKILL, each after a grace period."""
        self._stopping = True
        self.ready.clear()
        link = self._link
        if link is not None:
            await link.close()

    def _crash_loop(self) -> bool:
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self._policy.crash_loop_window:
            self._crashes.popleft()
        return len(self._crashes) > self._policy.crash_loop_restarts
