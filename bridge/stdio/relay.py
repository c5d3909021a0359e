"""Message-level relay between client sessions and one stdio MCP server.

Every client shares one JSON-RPC id space on the server's stdin, so each request is renumbered on the way in and
restored on the way out, and progress tokens likewise: a reply reaches only the exchange that asked, whatever ids
the clients chose. Notifications go to the sessions that should see them, requests from the server to the client
that caused them. Messages stay the dicts orjson decoded: no typed parse on the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson

from bridge.eras import modern_result
from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import CONNECTION_CLOSED, INVALID_REQUEST, LOG_LEVELS, Message, RequestId, error
from bridge.stdio.links import LinkBroken

__all__ = ["Relay"]

logger = logging.getLogger(__name__)


class Relay:
    """Routes messages between any number of client sessions and the server behind one link."""

    def __init__(self, *, exclusive: bool) -> None:
        self.exclusive = exclusive
        """One client owns the server (per-session mode): its notifications and requests pass through unchanged."""
        self.peers: set[Peer] = set()
        self.listeners: list[Callable[[Message], None]] = []
        self._write: Callable[[bytes], None] | None = None
        self._down_reason = "is starting; retry shortly"
        self._next_id = 0
        self._pending: dict[int, Exchange] = {}
        self._tokens: dict[int, Exchange] = {}
        self._server_requests: dict[RequestId, Peer] = {}
        self._subscribed: dict[str, int] = {}
        self._log_level: str | None = None

    # Link lifecycle, driven by the supervisor.

    def connect(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def disconnect(self, reason: str) -> None:
        """The server is gone: fail every request in flight at once, so no client waits for a reply that won't come."""
        self._write = None
        self._down_reason = reason
        pending, self._pending = self._pending, {}
        self._tokens.clear()
        self._server_requests.clear()
        for exchange in pending.values():
            exchange.fail(
                CONNECTION_CLOSED,
                f"The MCP server {reason} before answering; the bridge is restarting it. Retry the request.",
            )

    @property
    def inflight(self) -> int:
        return len(self._pending)

    def restore(self) -> list[Message]:
        """Requests that bring a restarted server back to the state its clients set up (log level, subscriptions)."""
        messages: list[Message] = []
        if self._log_level is not None:
            messages.append({"method": "logging/setLevel", "params": {"level": self._log_level}})
        messages.extend({"method": "resources/subscribe", "params": {"uri": uri}} for uri in self._subscribed)
        return messages

    # Client to server.

    def request(self, exchange: Exchange, message: Message) -> None:
        """Send a client's request; the reply and related messages arrive through `exchange`."""
        write = self._write
        if write is None:
            raise ServerUnavailable(f"The MCP server {self._down_reason}.")
        child_id = self._next_id
        self._next_id += 1
        message["id"] = child_id
        params = message.get("params")
        if type(params) is dict:
            meta = params.get("_meta")
            if type(meta) is dict and "progressToken" in meta:
                exchange.client_token = meta["progressToken"]
                meta["progressToken"] = child_id
                self._tokens[child_id] = exchange
        exchange.child_id = child_id
        self._pending[child_id] = exchange
        if exchange.peer is not None:
            exchange.peer.inflight[exchange.client_id] = exchange
        try:
            write(orjson.dumps(message) + b"\n")
        except LinkBroken as exc:
            self._forget(exchange)
            raise ServerUnavailable(f"The MCP server cannot take requests: {exc}.") from exc

    def cancel(self, exchange: Exchange, reason: str) -> None:
        """Tell the server a client gave up on a request (timeout, disconnect, its own cancel)."""
        if self._pending.get(exchange.child_id) is not exchange:
            return
        self._forget(exchange)
        self.send({"method": "notifications/cancelled", "params": {"requestId": exchange.child_id, "reason": reason}})

    def notify(self, peer: Peer, message: Message) -> None:
        """Forward a client's notification where it means something."""
        method = message.get("method")
        if method == "notifications/cancelled":
            params = message.get("params") or {}
            exchange = peer.inflight.get(params.get("requestId"))  # type: ignore[arg-type]  # any JSON id misses
            if exchange is not None:
                self.cancel(exchange, str(params.get("reason") or "cancelled by the client"))
                exchange.fail(INVALID_REQUEST, "Request cancelled by the client.")
        elif method != "notifications/initialized" and self.exclusive:
            # Shared mode: the server saw one handshake (the bridge's); roots and other client-scoped
            # notifications from one of many clients would mislead it.
            self.send(message)

    def answer(self, peer: Peer, message: Message) -> bool:
        """Pass a client's response to a server request back to the server; False if it was not asked of this peer."""
        if self._server_requests.get(message["id"]) is not peer:
            return False
        del self._server_requests[message["id"]]
        self.send(message)
        return True

    def subscribe(self, uri: str) -> bool:
        """Count one more subscriber; True when the server must be asked (the first one)."""
        count = self._subscribed.get(uri, 0)
        self._subscribed[uri] = count + 1
        return count == 0

    def unsubscribe(self, uri: str) -> bool:
        """Count one subscriber less; True when the server must be told (the last one left)."""
        count = self._subscribed.get(uri, 0)
        if count <= 1:
            self._subscribed.pop(uri, None)
            return count == 1
        self._subscribed[uri] = count - 1
        return False

    def wanted_log_level(self) -> str | None:
        """The most verbose level any session asked for: the server must log at least that much."""
        levels = [peer.log_level for peer in self.peers if peer.log_level in LOG_LEVELS]
        wanted = min(levels, key=LOG_LEVELS.index) if levels else None
        if wanted == self._log_level:
            return None
        self._log_level = wanted
        return wanted

    def detach(self, peer: Peer) -> list[str]:
        """Forget a closed session: cancel its requests, refuse what the server asked of it.

        Returns the URIs nobody subscribes to any more, for the caller to unsubscribe.
        """
        self.peers.discard(peer)
        for exchange in list(peer.inflight.values()):
            self.cancel(exchange, "the client session ended")
            exchange.fail(CONNECTION_CLOSED, "The session ended.")
        for request_id in [rid for rid, owner in self._server_requests.items() if owner is peer]:
            del self._server_requests[request_id]
            self.send(error(request_id, INVALID_REQUEST, "The client session that this request was for has ended."))
        return [uri for uri in peer.subscriptions if self.unsubscribe(uri)]

    # Server to client.

    def receive(self, line: bytes) -> None:
        """Route one line the server wrote."""
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            logger.error("The MCP server wrote a line that is not JSON; ignored: %.200r", line)
            return
        if type(message) is not dict:
            logger.error("The MCP server wrote JSON that is not a JSON-RPC message; ignored: %.200r", line)
        elif "method" not in message:
            self._response(message)
        elif "id" in message:
            self._server_request(message)
        else:
            self._server_notification(message)

    def _response(self, message: Message) -> None:
        exchange = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]  # any JSON id misses
        if exchange is None:
            logger.debug("Dropped a reply to no pending request (id %r): its client gave up.", message.get("id"))
            return
        if exchange.client_token is not None:
            self._tokens.pop(exchange.child_id, None)
        message["id"] = exchange.client_id
        failure = message.get("error")
        if failure is not None:
            exchange.error_code = failure.get("code", 0) if type(failure) is dict else 0
        elif exchange.modern:
            result = message.get("result")
            if type(result) is dict:
                modern_result(exchange.method, result)
        exchange.push(orjson.dumps(message), final=True)

    def _server_notification(self, message: Message) -> None:
        method = message["method"]
        params = message.get("params")
        if type(params) is not dict:
            params = {}
        if method == "notifications/progress":
            exchange = self._tokens.get(params.get("progressToken"))  # type: ignore[arg-type]
            if exchange is not None:
                params["progressToken"] = exchange.client_token
                exchange.push(orjson.dumps(message))
            return
        for listener in self.listeners:
            listener(message)
        if method == "notifications/cancelled":
            owner = self._server_requests.pop(params.get("requestId"), None)  # type: ignore[arg-type]
            targets: list[Peer] = [owner] if owner is not None else []
        elif method == "notifications/message":
            level = params.get("level")
            rank = LOG_LEVELS.index(level) if level in LOG_LEVELS else len(LOG_LEVELS)
            targets = [p for p in self.peers if p.log_level is None or rank >= LOG_LEVELS.index(p.log_level)]
        elif method == "notifications/resources/updated":
            uri = params.get("uri")
            targets = [p for p in self.peers if uri in p.subscriptions]
        else:
            targets = list(self.peers)
        if targets:
            data = orjson.dumps(message)
            for peer in targets:
                peer.deliver(data)

    def _server_request(self, message: Message) -> None:
        if message["method"] == "ping":
            self.send({"id": message["id"], "result": {}})
            return
        peer = self._attribute()
        if peer is None:
            self.send(
                error(
                    message["id"],
                    INVALID_REQUEST,
                    f"{message['method']} cannot be routed: the bridge shares this server between several client "
                    "sessions with calls in flight. Run the bridge with --session-mode per-session to use it.",
                )
            )
            return
        if not peer.back_channel:
            self.send(
                error(
                    message["id"],
                    INVALID_REQUEST,
                    f"{message['method']} cannot reach the client: protocol 2026-07-28 has no server-to-client "
                    "requests.",
                )
            )
            return
        self._server_requests[message["id"]] = peer
        data = orjson.dumps(message)
        if len(peer.inflight) == 1:
            # The request belongs to the call in flight: it rides on that call's response stream. With several,
            # stdio does not say which one asked, so it goes to the session's own stream rather than a guess.
            next(iter(peer.inflight.values())).push(data)
        else:
            peer.deliver(data)

    def _attribute(self) -> Peer | None:
        """The one client a server request can be for: the session owner, or the only one with calls in flight."""
        if self.exclusive:
            return next(iter(self.peers), None)
        owners = {exchange.peer for exchange in self._pending.values() if exchange.peer is not None}
        return owners.pop() if len(owners) == 1 else None

    def _forget(self, exchange: Exchange) -> None:
        self._pending.pop(exchange.child_id, None)
        self._tokens.pop(exchange.child_id, None)
        if exchange.peer is not None:
            exchange.peer.inflight.pop(exchange.client_id, None)

    def send(self, message: Message) -> None:
        """Write a message of the bridge's own to the server (dropped while it is down)."""
        write = self._write
        if write is None:
            return
        message["jsonrpc"] = "2.0"
        try:
            write(orjson.dumps(message) + b"\n")
        except LinkBroken as exc:
            logger.warning("Could not pass %s to the MCP server: %s", message.get("method", "a response"), exc)
