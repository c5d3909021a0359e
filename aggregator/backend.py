"""The aggregator as a backend of the bridge's HTTP front: one MCP server made of many targets.

Lists come from the catalog (memory, never a fan-out per request); a call goes to the one target that owns the
name, under a deadline, on the upstream session that target already has. A down target fails its calls at once
with a message that names it, and lists say in `_meta` which targets are missing and why.

Upstream sessions are shared by every client, so what a client sets up on them is counted here: a resource is
subscribed upstream while any client subscribes to it, and each target logs at the most verbose level any client
asked for, each client then getting only what its own level lets through. Both are set up again on a target's new
session. Requests from a target (sampling, elicitation, roots) go to the client whose call they came with.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

import orjson

from aggregator.catalog import Catalog
from aggregator.config import AggregatorConfig
from aggregator.discovery import Source, Target
from aggregator.exceptions import UpstreamError, UpstreamRequestError, UpstreamUnavailable
from aggregator.metrics import TargetMetrics
from aggregator.naming import prefix_applies
from aggregator.registry import Registry
from aggregator.server_requests import UPSTREAM_CAPABILITIES, ServerRequests
from aggregator.upstream import Upstream
from bridge import __version__
from bridge.calls import CallTasks
from bridge.eras import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, discover_result, modern_result
from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import (
    CONNECTION_CLOSED,
    INVALID_PARAMS,
    LOG_LEVELS,
    METHOD_NOT_FOUND,
    Message,
    error_bytes,
    result_bytes,
)
from bridge.sessions import Session

__all__ = ["AggregatorBackend"]

logger = logging.getLogger(__name__)

MISSING_META: Final = "dev.plexus/missing"
"""`_meta` key of a list result naming the targets whose items are missing, with the reason."""
CONFLICTS_META: Final = "dev.plexus/conflicts"
"""`_meta` key of a tools or prompts list naming what is not exposed because two targets offer the name."""

CAPABILITIES: Final = {
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True, "subscribe": True},
    "completions": {},
    "logging": {},
}

MAX_BACKGROUND: Final = 256
"""Upstream set-up requests (log level, subscriptions) in flight at once; beyond that they are dropped, logged."""

_ITEM_KEYS: Final = {"tools": "name", "prompts": "name", "resources": "uri", "resourceTemplates": "uriTemplate"}
"""What identifies an item of each list: a cursor remembers the last one it returned."""

_LIST_KEYS: Final = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}


class AggregatorBackend:
    """Answers MCP requests for the union of the targets."""

    per_session = False
    gave_up: str | None = None

    def __init__(self, config: AggregatorConfig, source: Source) -> None:
        self.config = config
        self._source = source
        self._source_task: asyncio.Task[None] | None = None
        self._applying: asyncio.Task[None] | None = None
        self._wanted: Mapping[str, Target] | None = None
        self.catalog = Catalog()
        self.registry = Registry(
            list_timeout=config.list_timeout,
            client_info={"name": config.server_name, "version": __version__},
            capabilities=UPSTREAM_CAPABILITIES,
            on_change=self._rebuild,
            on_notification=self._forward,
            on_request=self._unrelated_request,
            on_up=self._set_up,
        )
        self.metrics = TargetMetrics(lambda: self.registry.states)
        self._sessions: set[Session] = set()
        self._listeners: list[Callable[[Message], None]] = []
        self._calls = CallTasks()
        self._calling: dict[str, set[Exchange]] = {}
        """The exchanges in flight to each target, to attribute requests a target sends outside any call."""
        self._server_requests = ServerRequests()
        self._subscribers: dict[tuple[str, str], set[Any]] = {}
        """(target, the target's URI) to the peers (sessions, listeners) subscribed to it."""
        self._log_level: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._tokens = itertools.count(1)
        self._started = False
        self._wanted_once = False
        self.page_size = 200

    @property
    def ready(self) -> bool:
        """Once the discovery source published its first target set: before, every list would be empty."""
        return self._started and self._wanted_once

    @property
    def inflight(self) -> int:
        return len(self._calls)

    async def start(self) -> None:
        self._source_task = asyncio.create_task(self._source.run(self._publish), name="discovery")
        self._started = True

    def _publish(self, targets: Mapping[str, Target]) -> None:
        """A discovery source's new target set: applied in order, the latest set winning over pending ones."""
        config = getattr(self._source, "config", None)
        if isinstance(config, AggregatorConfig):
            self.config = config
        self._wanted = targets
        self._wanted_once = True
        if self._applying is None or self._applying.done():
            self._applying = asyncio.create_task(self._apply(), name="apply-targets")

    async def _apply(self) -> None:
        while self._wanted is not None:
            targets, self._wanted = self._wanted, None
            await self.registry.apply(targets)

    async def stop(self) -> None:
        if self._source_task is not None:
            # Awaited: a launching source stops the bridges it started on its way out.
            self._source_task.cancel()
            await asyncio.gather(self._source_task, return_exceptions=True)
        if self._applying is not None:
            await asyncio.gather(self._applying, return_exceptions=True)
        await self._calls.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.registry.stop()

    # The catalog and change notifications.

    def _rebuild(self) -> None:
        states = self.registry.states
        up = {name: state.lists for name, state in states.items() if state.status == "up"}
        policies = {name: state.target.policy for name, state in states.items()}
        prefix = prefix_applies(self.config.prefix, len(states))
        catalog = Catalog.build(up, policies, prefix=prefix, separator=self.config.separator)
        changed = [key for key in catalog.lists if catalog.lists[key] != self.catalog.lists[key]]
        self.catalog = catalog
        for key in changed:
            method = {"resourceTemplates": "resources"}.get(key, key)
            self._broadcast({"jsonrpc": "2.0", "method": f"notifications/{method}/list_changed"})

    def _broadcast(self, message: Message) -> None:
        data = orjson.dumps(message)
        for session in self._sessions:
            session.deliver(data)
        for listener in self._listeners:
            listener(message)

    def _forward(self, target: str, message: Message) -> None:
        """A target's other notifications: logs (named after the target, to the sessions whose level lets them
        through) and resource updates (URIs rewritten, to the subscribers).
        """
        method = message.get("method")
        params = dict(message.get("params") or {})
        if method == "notifications/message":
            for session in self._sessions:
                log = _log_for(target, message, session.log_level)
                if log is not None:
                    session.deliver(orjson.dumps(log))
            return
        if method != "notifications/resources/updated" or not isinstance(params.get("uri"), str):
            return
        peers = list(self._subscribers.get((target, params["uri"]), ()))
        params["uri"] = self.catalog.exposed_uri(target, params["uri"])
        forwarded = {"jsonrpc": "2.0", "method": method, "params": params}
        data = orjson.dumps(forwarded)
        for peer in peers:
            if isinstance(peer, Session):
                peer.deliver(data)
        for listener in self._listeners:
            listener(forwarded)

    # What clients set up on the shared upstream sessions.

    async def _set_up(self, target: str, upstream: Upstream) -> None:
        """Give a target's new session the log level and subscriptions its clients set up."""
        self._set_level(upstream)
        for owner, uri in list(self._subscribers):
            if owner == target:
                self._spawn(self._tell(upstream, "resources/subscribe", {"uri": uri}))

    def _retune_log_level(self) -> None:
        """Targets log at the most verbose level any session asked for."""
        levels = [session.log_level for session in self._sessions if session.log_level in LOG_LEVELS]
        wanted = min(levels, key=LOG_LEVELS.index) if levels else None
        if wanted is None or wanted == self._log_level:
            return
        self._log_level = wanted
        for name in self.registry.states:
            upstream = self.registry.upstream(name)
            if upstream is not None:
                self._set_level(upstream)

    def _set_level(self, upstream: Upstream) -> None:
        """Tell a target that logs the level its clients want, if any asked for one."""
        if self._log_level is not None and "logging" in upstream.capabilities:
            self._spawn(self._tell(upstream, "logging/setLevel", {"level": self._log_level}))

    def _subscribe(self, peer: Any, target: str, uri: str) -> None:
        subscribers = self._subscribers.setdefault((target, uri), set())
        first = not subscribers
        subscribers.add(peer)
        upstream = self.registry.upstream(target)
        if first and upstream is not None:
            self._spawn(self._tell(upstream, "resources/subscribe", {"uri": uri}))

    def _unsubscribe(self, peer: Any, target: str, uri: str) -> None:
        subscribers = self._subscribers.get((target, uri))
        if subscribers is None or peer not in subscribers:
            return
        subscribers.discard(peer)
        if subscribers:
            return
        del self._subscribers[(target, uri)]
        upstream = self.registry.upstream(target)
        if upstream is not None:
            self._spawn(self._tell(upstream, "resources/unsubscribe", {"uri": uri}))

    async def _tell(self, upstream: Upstream, method: str, params: dict[str, Any]) -> None:
        try:
            await upstream.request(method, params, timeout=self.config.list_timeout)
        except UpstreamError as exc:
            logger.warning("%s %s failed: %s", method, params, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if len(self._background) >= MAX_BACKGROUND:
            logger.warning("%d upstream set-up requests in flight already; dropped one.", MAX_BACKGROUND)
            work.close()
            return
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Requests from targets to clients.

    async def _unrelated_request(self, target: str, message: Message) -> Message:
        """A target's request that came with no call: for the one client with calls in flight to it, if one."""
        peers = {exchange.peer for exchange in self._calling.get(target, ())}
        peer = peers.pop() if len(peers) == 1 else None
        return await self._server_requests.ask(target, message, peer, None)

    async def _related_request(self, upstream: Upstream, target: str, exchange: Exchange, message: Message) -> None:
        answer = await self._server_requests.ask(target, message, exchange.peer, exchange)
        reply: Message = {"jsonrpc": "2.0", "id": message["id"]}
        if "error" in answer:
            reply["error"] = answer["error"]
        else:
            reply["result"] = answer.get("result", {})
        try:
            await upstream.respond(reply)
        except UpstreamError as exc:
            logger.info("The answer to %s could not be delivered: %s", message.get("method"), exc)

    def missing(self) -> list[dict[str, str]]:
        return [
            {"target": name, "status": state.status, "reason": state.error or "not connected yet"}
            for name, state in sorted(self.registry.states.items())
            if state.status != "up"
        ]

    # Sessions and requests.

    async def initialize(self, session: Session, message: Message, timeout: float) -> bytes:
        params = message.get("params") or {}
        session.capabilities = params.get("capabilities") or {}
        requested = params.get("protocolVersion")
        session.protocol_version = requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION
        self._sessions.add(session)
        result: dict[str, Any] = {
            "protocolVersion": session.protocol_version,
            "capabilities": CAPABILITIES,
            "serverInfo": {"name": self.config.server_name, "version": __version__},
        }
        instructions = self._instructions()
        if instructions:
            result["instructions"] = instructions
        return result_bytes(message["id"], result)

    def adopt(self, session: Session) -> None:
        """A session initialized by another replica (its id sealed its version and capabilities) is served here."""
        self._sessions.add(session)

    def _instructions(self) -> str:
        parts = [self.config.instructions] if self.config.instructions else []
        for name, state in sorted(self.registry.states.items()):
            if state.lists.instructions:
                parts.append(f"## {name}\n{state.lists.instructions}")
        return "\n\n".join(parts)

    def call(self, peer: Peer, exchange: Exchange, message: Message) -> None:
        method = exchange.method
        params = message.get("params") or {}
        if method in _LIST_KEYS:
            exchange.push(self._list(exchange, _LIST_KEYS[method], params.get("cursor")), final=True)
        elif method == "ping":
            exchange.push(result_bytes(exchange.client_id, {}), final=True)
        elif method in ("tools/call", "prompts/get", "resources/read", "completion/complete"):
            self._start(peer, exchange, method, dict(params))
        elif method == "logging/setLevel" and isinstance(peer, Session):
            level = params.get("level")
            if level not in LOG_LEVELS:
                exchange.fail(INVALID_PARAMS, f"Unknown log level {level!r}; use one of: {', '.join(LOG_LEVELS)}.")
                return
            peer.log_level = level
            self._retune_log_level()
            exchange.push(result_bytes(exchange.client_id, {}), final=True)
        elif method in ("resources/subscribe", "resources/unsubscribe"):
            route = self.catalog.resource_route(str(params.get("uri")))
            if route is None:
                exchange.fail(INVALID_PARAMS, f"Unknown resource {params.get('uri')!r}; resources/list shows them.")
                return
            if method == "resources/subscribe":
                self._subscribe(peer, *route)
            else:
                self._unsubscribe(peer, *route)
            exchange.push(result_bytes(exchange.client_id, {}), final=True)
        else:
            exchange.fail(METHOD_NOT_FOUND, f"{method} is not supported by the aggregator.")

    def _list(self, exchange: Exchange, key: str, cursor: Any) -> bytes:
        items = self.catalog.lists[key]
        self.metrics.cache_hit(key)
        start = 0
        if cursor is not None:
            found = _resume(items, _ITEM_KEYS[key], cursor)
            if found is None:
                return error_bytes(
                    exchange.client_id, INVALID_PARAMS, f"Unknown cursor {cursor!r}; list from the start."
                )
            start = found
        page = items[start : start + self.page_size]
        result: dict[str, Any] = {key: page}
        if start + self.page_size < len(items):
            result["nextCursor"] = _cursor(start + self.page_size, page[-1][_ITEM_KEYS[key]])
        meta: dict[str, Any] = {}
        missing = self.missing()
        if missing:
            meta[MISSING_META] = missing
        conflicts = [c for c in self.catalog.conflicts if c.startswith(key[:-1] + " ")]
        if conflicts:
            meta[CONFLICTS_META] = conflicts
        if meta:
            result["_meta"] = meta
        if exchange.modern:
            modern_result(exchange.method, result)
        return result_bytes(exchange.client_id, result)

    def _start(self, peer: Peer, exchange: Exchange, method: str, params: dict[str, Any]) -> None:
        try:
            target, params = self._route(method, params)
        except LookupError as exc:
            exchange.fail(INVALID_PARAMS, str(exc))
            return
        upstream = self.registry.upstream(target)
        if upstream is None:
            state = self.registry.states.get(target)
            reason = state.error if state is not None and state.error else "not connected"
            exchange.fail(CONNECTION_CLOSED, f"Target {target!r} is down ({reason}); try again when it is back.")
            return
        self._calls.start(peer, exchange, self._run(exchange, target, method, params))

    def _route(self, method: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The owning target and the params it should see (its own names and URIs)."""
        if method in ("tools/call", "prompts/get"):
            key = "tools" if method == "tools/call" else "prompts"
            route = self.catalog.route(key, str(params.get("name")))
            if route is None:
                raise LookupError(self._unknown(key[:-1], str(params.get("name"))))
            params["name"] = route[1]
            return route[0], params
        if method == "resources/read":
            found = self.catalog.resource_route(str(params.get("uri")))
            if found is None:
                raise LookupError(f"Unknown resource {params.get('uri')!r}; resources/list shows what is offered.")
            params["uri"] = found[1]
            return found[0], params
        ref = dict(params.get("ref") or {})
        if ref.get("type") == "ref/prompt":
            route = self.catalog.route("prompts", str(ref.get("name")))
            if route is None:
                raise LookupError(f"Unknown prompt {ref.get('name')!r} in the completion reference.")
            ref["name"] = route[1]
            params["ref"] = ref
            return route[0], params
        found = self.catalog.resource_route(str(ref.get("uri")))
        if found is None:
            raise LookupError(f"Unknown resource {ref.get('uri')!r} in the completion reference.")
        ref["uri"] = found[1]
        params["ref"] = ref
        return found[0], params

    def _unknown(self, kind: str, name: str) -> str:
        """Why a name is not routable: the target it names is down, or nothing offers it."""
        separator = self.config.separator
        for target, state in self.registry.states.items():
            if state.status != "up" and name.startswith(target + separator):
                reason = state.error or "not connected yet"
                return f"The {kind} {name!r} belongs to target {target!r}, which is down ({reason}); retry later."
        return f"Unknown {kind} {name!r}; {kind}s/list shows what is offered."

    async def _run(self, exchange: Exchange, target: str, method: str, params: dict[str, Any]) -> None:
        upstream = self.registry.upstream(target)
        assert upstream is not None
        meta = params.get("_meta")
        token: Any = None
        if isinstance(meta, dict) and meta.get("progressToken") is not None:
            # Tokens are unique per upstream session, which many clients share: the aggregator hands out its own.
            token = meta["progressToken"]
            params["_meta"] = {**meta, "progressToken": f"plexus-{next(self._tokens)}"}

        def related(message: Message) -> None:
            """What the target sends during this call goes to its caller, on the call's own stream."""
            method = message.get("method")
            if "id" in message:
                self._spawn(self._related_request(upstream, target, exchange, message))
            elif method == "notifications/progress":
                if token is not None:
                    progress = {**message, "params": {**(message.get("params") or {}), "progressToken": token}}
                    exchange.push(orjson.dumps(progress))
            elif method == "notifications/message":
                log = _log_for(target, message, getattr(exchange.peer, "log_level", None))
                if log is not None:
                    exchange.push(orjson.dumps(log))
            else:
                self._forward(target, message)

        timeout = self.registry.timeout_for(target, True, self.config.call_timeout)
        calling = self._calling.setdefault(target, set())
        calling.add(exchange)
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = await upstream.request(
                method, params, timeout=timeout, on_message=related, headers=self._forwarded(target, exchange)
            )
        except UpstreamRequestError as exc:
            outcome = "error"
            exchange.fail(exc.code, f"{target}: {exc.message}")
            return
        except UpstreamUnavailable as exc:
            outcome = "unavailable"
            self.registry.record(target, False, str(exc))
            exchange.fail(CONNECTION_CLOSED, str(exc))
            return
        except UpstreamError as exc:
            outcome = "error"
            exchange.fail(CONNECTION_CLOSED, str(exc))
            return
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            calling.discard(exchange)
            self.metrics.observe(target, method, outcome, time.perf_counter() - started)
        self.registry.record(target, True)
        if method == "resources/read":
            for content in result.get("contents") or ():
                if isinstance(content, dict) and isinstance(content.get("uri"), str):
                    content["uri"] = self.catalog.exposed_uri(target, content["uri"])
        if exchange.modern:
            modern_result(method, result)
        exchange.push(result_bytes(exchange.client_id, result), final=True)

    def _forwarded(self, target: str, exchange: Exchange) -> dict[str, str]:
        """The client's headers this target's policy lets through (names are lower-case in both)."""
        state = self.registry.states.get(target)
        allowed = state.target.policy.forward_headers if state is not None else ()
        return {
            name: exchange.headers[name.encode()].decode("latin-1")
            for name in allowed
            if name.encode() in exchange.headers
        }

    def cancel(self, exchange: Exchange, reason: str) -> None:
        self._calls.cancel(exchange)

    def notify(self, peer: Peer, message: Message) -> None:
        self._calls.cancelled_by_client(peer, message)

    def answer(self, peer: Peer, message: Message) -> bool:
        return self._server_requests.answer(peer, message)

    async def close_session(self, session: Session) -> None:
        self._sessions.discard(session)
        self._calls.cancel_all(session)
        self._server_requests.forget(session)
        for target, uri in [key for key, peers in self._subscribers.items() if session in peers]:
            self._unsubscribe(session, target, uri)
        if session.log_level is not None:
            self._retune_log_level()

    def discover_result(self) -> dict[str, Any]:
        server_info = {"name": self.config.server_name, "version": __version__}
        return discover_result(CAPABILITIES, server_info, self._instructions(), cache_scope="private")

    def watch(self, listener: Callable[[Message], None], uris: set[str]) -> Callable[[], None]:
        """Hear every notification (a 2026-07-28 `subscriptions/listen`), with `uris` subscribed meanwhile."""
        self._listeners.append(listener)
        routes = [route for route in map(self.catalog.resource_route, uris) if route is not None]
        for route in routes:
            self._subscribe(listener, *route)

        def unwatch() -> None:
            self._listeners.remove(listener)
            for route in routes:
                self._unsubscribe(listener, *route)

        return unwatch

    def targets(self) -> Mapping[str, Any]:
        """The `/targets` document: every target's status, last error, tool count and handshake latency."""
        return {
            "targets": [state.describe() for _, state in sorted(self.registry.states.items())],
            "conflicts": self.catalog.conflicts,
        }


def _log_for(target: str, message: Message, level: str | None) -> Message | None:
    """A target's log message as a client at `level` should get it (its logger named after the target), or None
    when that level filters it out.
    """
    params = dict(message.get("params") or {})
    if level is not None:
        rank = LOG_LEVELS.index(params["level"]) if params.get("level") in LOG_LEVELS else len(LOG_LEVELS)
        if rank < LOG_LEVELS.index(level):
            return None
    params["logger"] = f"{target}/{params.get('logger', '')}".rstrip("/")
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": params}


def _cursor(offset: int, last: str) -> str:
    """A cursor: where the next page starts, and the last item returned, so a list that changed in between
    resumes after that item instead of skipping or repeating what moved."""
    return base64.urlsafe_b64encode(orjson.dumps([offset, last])).decode()


def _resume(items: list[dict[str, Any]], field: str, cursor: Any) -> int | None:
    """The index a cursor resumes at in `items` (as they are now), or None for a cursor not made by `_cursor`."""
    try:
        offset, last = orjson.loads(base64.urlsafe_b64decode(str(cursor).encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(offset, int) or not isinstance(last, str) or offset < 1:
        return None
    if offset <= len(items) and items[offset - 1].get(field) == last:
        return offset
    index = next((i for i, item in enumerate(items) if item.get(field) == last), None)
    return index + 1 if index is not None else min(offset, len(items))
