"""The seam between the HTTP front and what serves MCP behind it (a stdio server, or a REST API described by OpenAPI).

The front owns transports, sessions, limits and eras; a backend owns what a request means. Requests travel as
`Exchange`s: the backend pushes each message for the client into the exchange and ends it with the reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import Message
from bridge.sessions import Session

__all__ = ["Backend"]


class Backend(Protocol):
    """What the HTTP front needs from whatever serves MCP behind it."""

    @property
    def per_session(self) -> bool:
        """Whether each session needs its own handshake (and so 2026-07-28 clients must fall back to one)."""

    @property
    def ready(self) -> bool:
        """Whether new sessions and requests can be served now (`/readyz`)."""

    @property
    def gave_up(self) -> str | None:
        """Why the backend stopped trying to serve, if it did (`/livez` fails then)."""

    @property
    def inflight(self) -> int:
        """Requests started and not yet answered."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def initialize(self, session: Session, message: Message, timeout: float) -> bytes:
        """Answer a session's `initialize`; raises `ServerUnavailable` when it cannot be served."""

    def call(self, peer: Peer, exchange: Exchange, message: Message) -> None:
        """Start a request; its messages and reply arrive through `exchange`. Raises `ServerUnavailable`."""

    def cancel(self, exchange: Exchange, reason: str) -> None:
        """Stop working on a request whose client gave up."""

    def notify(self, peer: Peer, message: Message) -> None:
        """Take a client's notification."""

    def answer(self, peer: Peer, message: Message) -> bool:
        """Take a client's response to a request the server sent it; False if none was asked of that peer."""

    async def close_session(self, session: Session) -> None: ...

    def discover_result(self) -> dict[str, Any]:
        """The `server/discover` result for 2026-07-28 clients; raises `ServerUnavailable` before it is known."""

    def watch(self, listener: Callable[[Message], None], uris: set[str]) -> Callable[[], None]:
        """Hear every notification the server sends, with `uris` subscribed; returns the function that stops it."""
