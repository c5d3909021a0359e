"""Client sessions of the handshake era (2025-11-25 and older), bounded in number and reaped when idle.

A session is what the relay calls a peer: it holds the requests in flight, the resources it subscribed to, its log
level, and a bounded stream for messages that answer none of its requests (the GET stream of streamable HTTP, or
the whole event stream of the legacy SSE transport).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

from bridge.exchange import Exchange
from bridge.jsonrpc import RequestId
from bridge.sealing import SessionSealer

__all__ = ["ModernPeer", "Session", "SessionRegistry"]

logger = logging.getLogger(__name__)

STREAM_BACKLOG: Final = 1024
"""Messages kept for a session whose stream is not being read; the oldest are dropped past this."""

REAP_INTERVAL: Final = 10.0
"""Seconds between sweeps for idle sessions."""


class Session:
    """One client session: what the relay routes to, and what the HTTP transports read from."""

    back_channel = True

    def __init__(self, transport: str) -> None:
        self.id = secrets.token_urlsafe(24)
        self.transport = transport
        self.inflight: dict[RequestId, Exchange] = {}
        self.subscriptions: set[str] = set()
        self.log_level: str | None = None
        self.protocol_version = ""
        self.capabilities: dict[str, Any] = {}
        self.last_seen = time.monotonic()
        self.stream_readers = 0
        self.closed = False
        self._stream: deque[bytes | None] = deque(maxlen=STREAM_BACKLOG)
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, data: bytes) -> None:
        """Route a message that answers none of this client's requests.

        With no stream open, a call in flight carries it on its own response stream, as a server would send a log
        line or a sampling request during that call.
        """
        if not self.stream_readers and self.inflight:
            next(reversed(self.inflight.values())).push(data)
        else:
            self.push(data)

    def push(self, data: bytes | None) -> None:
        """Append to the session's stream; None ends it."""
        if len(self._stream) == self._stream.maxlen:
            logger.warning("Session %s: stream backlog full, dropped its oldest message.", self.id[:8])
        self._stream.append(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_message(self) -> bytes | None:
        """Wait for the next stream message; None once the session is closed."""
        while not self._stream:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._stream.popleft()

    def touch(self) -> None:
        self.last_seen = time.monotonic()


class ModernPeer:
    """The peer behind one 2026-07-28 request: no session, no back channel, no broadcasts."""

    back_channel = False
    log_level: str | None = None

    def __init__(self) -> None:
        self.inflight: dict[RequestId, Exchange] = {}
        self.subscriptions: set[str] = set()

    def deliver(self, data: bytes) -> None:
        """Nothing outside its own response reaches a 2026-07-28 request."""


class SessionRegistry:
    """The live sessions, at most `limit`, each closed after `idle_timeout` seconds without traffic.

    With a `sealer`, a streamable-HTTP session's id carries its protocol version and client capabilities, and an id
    this process has not seen (another replica's, or its own before a restart) is opened and handed to `adopt`.
    """

    def __init__(
        self,
        limit: int,
        idle_timeout: float,
        on_close: Callable[[Session], Awaitable[None]],
        *,
        sealer: SessionSealer | None = None,
        adopt: Callable[[Session], None] | None = None,
    ) -> None:
        self.limit = limit
        self.idle_timeout = idle_timeout
        self._on_close = on_close
        self._sealer = sealer
        self._adopt = adopt
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def full(self) -> bool:
        return len(self._sessions) >= self.limit

    def add(self, session: Session) -> None:
        self._sessions[session.id] = session

    def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.touch()
        return session

    def seal(self, session: Session) -> None:
        """Give an initialized session its sealed id (when sessions are sealed)."""
        if self._sealer is None:
            return
        self._sessions.pop(session.id, None)
        state = {"v": session.protocol_version, "c": session.capabilities}
        session.id = self._sealer.seal(state)
        self._sessions[session.id] = session

    def get_or_adopt(self, session_id: str) -> Session | None:
        """A live session, or one sealed elsewhere and taken over here; None when neither."""
        session = self.get(session_id)
        if session is not None or self._sealer is None or self._adopt is None or self.full():
            return session
        state = self._sealer.open(session_id)
        if state is None:
            return None
        session = Session("streamable-http")
        session.id = session_id
        session.protocol_version = str(state.get("v", ""))
        capabilities = state.get("c")
        session.capabilities = capabilities if isinstance(capabilities, dict) else {}
        self._sessions[session_id] = session
        self._adopt(session)
        logger.info("Session %s taken over from another replica (or from before a restart).", session_id[:8])
        return session

    async def close(self, session: Session) -> None:
        """End a session: its stream ends, its requests are cancelled, its server (per-session mode) stops."""
        if self._sessions.pop(session.id, None) is None:
            return
        session.closed = True
        session.push(None)
        await self._on_close(session)

    async def close_all(self) -> None:
        for session in self:
            await self.close(session)

    async def reap_forever(self) -> None:
        """Close sessions idle for longer than the timeout; a session with a request or stream open is not idle."""
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            deadline = time.monotonic() - self.idle_timeout
            for session in self:
                if session.last_seen < deadline and not session.inflight and not session.stream_readers:
                    logger.info("Closing session %s: idle for over %.0f s.", session.id[:8], self.idle_timeout)
                    await self.close(session)
