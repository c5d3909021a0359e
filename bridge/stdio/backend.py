"""Serves client sessions from stdio MCP servers, in one of two session modes.

`shared`: one server for every session. The bridge performs the one `initialize` itself and answers each client's
from it; it keeps per-session log levels and resource subscriptions and tells the server the union.
`per-session`: one server per session, started by that session's `initialize` (so the server sees the client's own
capabilities and identity) and stopped when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from bridge._version import __version__
from bridge.eras import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, discover_result
from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import Message, result_bytes
from bridge.sessions import Session
from bridge.stdio.links import Link, open_fifo, spawn_process
from bridge.stdio.relay import Relay
from bridge.stdio.supervisor import RestartPolicy, Supervisor

__all__ = ["StdioBackend"]

logger = logging.getLogger(__name__)

SHARED_CLIENT_CAPABILITIES: Final[dict[str, Any]] = {"sampling": {}, "elicitation": {}}
"""What the bridge tells a shared server about its clients: requests it can route to the one client in a call.

Roots are left out: they describe one client's workspace, which a server shared by many cannot have.
"""


class StdioBackend:
    """The stdio side of the bridge: supervisors, relays and the per-method rules of each session mode."""

    def __init__(
        self,
        *,
        command: list[str],
        fifo: Path | None,
        per_session: bool,
        max_children: int,
        policy: RestartPolicy,
        max_message_bytes: int,
        on_restart: Callable[[], None],
    ) -> None:
        self.per_session = per_session
        self._command = command
        self._fifo = fifo
        self._max_children = max_children
        self._policy = policy
        self._max_message_bytes = max_message_bytes
        self._on_restart = on_restart
        self._tasks: set[asyncio.Task[None]] = set()
        self._children: dict[Session, Supervisor] = {}
        self.shared: Supervisor | None = None
        if not per_session:
            params = {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": SHARED_CLIENT_CAPABILITIES,
                "clientInfo": {"name": "plexus-bridge", "version": __version__},
            }
            self.shared = self._supervisor(Relay(exclusive=False), params)

    def _connect(self) -> Awaitable[Link]:
        if self._fifo is not None:
            return open_fifo(self._fifo, self._max_message_bytes)
        return spawn_process(self._command, self._max_message_bytes)

    def _supervisor(self, relay: Relay, params: Message) -> Supervisor:
        return Supervisor(
            self._connect, relay, params, self._policy, self._max_message_bytes, on_restart=self._on_restart
        )

    def _start(self, supervisor: Supervisor) -> None:
        task = asyncio.create_task(supervisor.run(), name="stdio-supervisor")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        if self.shared is not None:
            self._start(self.shared)

    async def stop(self) -> None:
        """Stop every server politely, then wait for the supervisors to finish."""
        supervisors = [*self._children.values(), *([self.shared] if self.shared else [])]
        await asyncio.gather(*(s.stop() for s in supervisors))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def ready(self) -> bool:
        """Shared: the server completed `initialize`. Per-session: another session can be started."""
        if self.shared is not None:
            return self.shared.ready.is_set()
        return len(self._children) < self._max_children

    @property
    def gave_up(self) -> str | None:
        return self.shared.gave_up if self.shared is not None else None

    @property
    def inflight(self) -> int:
        relays = [s.relay for s in self._children.values()] + ([self.shared.relay] if self.shared else [])
        return sum(relay.inflight for relay in relays)

    def _relay_for(self, peer: Peer | None) -> Relay:
        if self.shared is not None:
            return self.shared.relay
        supervisor = self._children.get(peer) if isinstance(peer, Session) else None
        if supervisor is None:
            raise ServerUnavailable("This session has no MCP server any more; start a new session with initialize.")
        return supervisor.relay

    async def wait_ready(self, supervisor: Supervisor, timeout: float) -> None:
        """Wait for a server to be ready, or fail with the reason it is not."""
        ready = asyncio.create_task(supervisor.ready.wait())
        stopped = asyncio.create_task(supervisor.stopped.wait())
        try:
            await asyncio.wait({ready, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stopped.cancel()
        if not supervisor.ready.is_set():
            reason = supervisor.gave_up or f"is not ready after {timeout:.0f} s"
            raise ServerUnavailable(f"The MCP server {reason}.")

    async def initialize(self, session: Session, message: Message, timeout: float) -> bytes:
        """Open a session: answer its `initialize` from the shared server, or start a server of its own."""
        params = message.get("params") or {}
        session.capabilities = params.get("capabilities") or {}
        requested = params.get("protocolVersion")
        if self.shared is not None:
            await self.wait_ready(self.shared, timeout)
            assert self.shared.init_result is not None
            result = dict(self.shared.init_result)
            if requested in HANDSHAKE_VERSIONS and HANDSHAKE_VERSIONS.index(requested) < HANDSHAKE_VERSIONS.index(
                result.get("protocolVersion", LATEST_HANDSHAKE_VERSION)
            ):
                result["protocolVersion"] = requested
            self.shared.relay.peers.add(session)
        else:
            if len(self._children) >= self._max_children:
                raise ServerUnavailable(
                    f"All {self._max_children} per-session MCP servers are in use (--max-children); "
                    "retry later or end idle sessions with DELETE."
                )
            supervisor = self._supervisor(Relay(exclusive=True), params)
            self._children[session] = supervisor
            supervisor.relay.peers.add(session)
            self._start(supervisor)
            try:
                await self.wait_ready(supervisor, timeout)
            except ServerUnavailable:
                await self.close_session(session)
                raise
            assert supervisor.init_result is not None
            result = supervisor.init_result
        session.protocol_version = result.get("protocolVersion", LATEST_HANDSHAKE_VERSION)
        return result_bytes(message["id"], result)

    def call(self, peer: Peer, exchange: Exchange, message: Message) -> None:
        """Send a request towards the server.

        Subscriptions and log levels are counted per session so that one session's unsubscribe or quieter level
        does not take effect for the others.
        """
        relay = self._relay_for(peer)
        method = exchange.method
        if method == "resources/subscribe" or method == "resources/unsubscribe":
            uri = (message.get("params") or {}).get("uri")
            if isinstance(uri, str):
                if method == "resources/subscribe":
                    needed = uri not in peer.subscriptions and relay.subscribe(uri)
                    peer.subscriptions.add(uri)
                else:
                    needed = uri in peer.subscriptions and relay.unsubscribe(uri)
                    peer.subscriptions.discard(uri)
                if not needed:
                    exchange.push(result_bytes(exchange.client_id, {}), final=True)
                    return
        elif method == "logging/setLevel":
            peer.log_level = (message.get("params") or {}).get("level")
            wanted = relay.wanted_log_level()
            if wanted is None:
                exchange.push(result_bytes(exchange.client_id, {}), final=True)
                return
            message["params"]["level"] = wanted
        relay.request(exchange, message)

    def cancel(self, exchange: Exchange, reason: str) -> None:
        with contextlib.suppress(ServerUnavailable):
            self._relay_for(exchange.peer).cancel(exchange, reason)

    def watch(self, listener: Callable[[Message], None], uris: set[str]) -> Callable[[], None]:
        """Hear the shared server's notifications, with `uris` subscribed (counted like a session's subscriptions)."""
        if self.shared is None:
            raise ServerUnavailable("Only a shared server can be watched.")
        relay = self.shared.relay
        relay.listeners.append(listener)
        for uri in uris:
            if relay.subscribe(uri):
                relay.send({"id": f"plexus-sub-{uri}", "method": "resources/subscribe", "params": {"uri": uri}})

        def stop() -> None:
            relay.listeners.remove(listener)
            for uri in uris:
                if relay.unsubscribe(uri):
                    relay.send({"id": f"plexus-unsub-{uri}", "method": "resources/unsubscribe", "params": {"uri": uri}})

        return stop

    def notify(self, peer: Peer, message: Message) -> None:
        with contextlib.suppress(ServerUnavailable):
            self._relay_for(peer).notify(peer, message)

    def answer(self, peer: Peer, message: Message) -> bool:
        try:
            return self._relay_for(peer).answer(peer, message)
        except ServerUnavailable:
            return False

    async def close_session(self, session: Session) -> None:
        """Release what the session held: its requests, subscriptions, and in per-session mode its server."""
        if self.shared is not None:
            relay = self.shared.relay
            for uri in relay.detach(session):
                relay.send({"id": f"plexus-unsub-{uri}", "method": "resources/unsubscribe", "params": {"uri": uri}})
            return
        supervisor = self._children.pop(session, None)
        if supervisor is not None:
            supervisor.relay.detach(session)
            await supervisor.stop()

    def discover_result(self) -> dict[str, Any]:
        """What a 2026-07-28 client learns from `server/discover`: the shared server's own handshake answer."""
        if self.shared is None or self.shared.init_result is None:
            raise ServerUnavailable("The MCP server is not ready.")
        init = self.shared.init_result
        return discover_result(
            init.get("capabilities") or {}, init.get("serverInfo") or {}, init.get("instructions"), cache_scope="public"
        )
