"""The aggregator as a backend of the bridge's HTTP front: one MCP server made of many targets.

Lists come from the catalog (memory, never a fan-out per request); a call goes to the one target that owns the
name, under a deadline, on the upstream session that target already has. A down target fails its calls at once
with a message that names it, and lists say in `_meta` which targets are missing and why.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from aggregator.catalog import Catalog
from aggregator.config import AggregatorConfig
from aggregator.discovery import Source, Target
from aggregator.exceptions import UpstreamError, UpstreamRequestError, UpstreamUnavailable
from aggregator.naming import exposed_uri, original_uri, prefix_applies
from aggregator.registry import Registry
from bridge import __version__
from bridge.calls import CallTasks
from bridge.eras import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, discover_result, modern_result
from bridge.exchange import Exchange, Peer
from bridge.jsonrpc import (
    CONNECTION_CLOSED,
    INVALID_PARAMS,
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

CAPABILITIES: Final = {
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True},
    "completions": {},
}

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
            on_change=self._rebuild,
            on_notification=self._forward,
        )
        self._sessions: set[Session] = set()
        self._listeners: list[Callable[[Message], None]] = []
        self._calls = CallTasks()
        self._tokens = itertools.count(1)
        self._started = False
        self.page_size = 200

    @property
    def ready(self) -> bool:
        return self._started

    @property
    def inflight(self) -> int:
        return len(self._calls)

    async def start(self) -> None:
        await self.registry.start()
        self._source_task = asyncio.create_task(self._source.run(self._publish), name="discovery")
        self._started = True

    def _publish(self, targets: Mapping[str, Target]) -> None:
        """A discovery source's new target set: applied in order, the latest set winning over pending ones."""
        config = getattr(self._source, "config", None)
        if isinstance(config, AggregatorConfig):
            self.config = config
        self._wanted = targets
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
        """A target's other notifications: logs (named after the target) and resource updates (URIs rewritten)."""
        method = message.get("method")
        params = dict(message.get("params") or {})
        if method == "notifications/message":
            params["logger"] = f"{target}/{params.get('logger', '')}".rstrip("/")
        elif method == "notifications/resources/updated" and isinstance(params.get("uri"), str):
            params["uri"] = exposed_uri(target, params["uri"])
        else:
            return
        self._broadcast({"jsonrpc": "2.0", "method": method, "params": params})

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
        else:
            exchange.fail(METHOD_NOT_FOUND, f"{method} is not supported by the aggregator.")

    def _list(self, exchange: Exchange, key: str, cursor: Any) -> bytes:
        items = self.catalog.lists[key]
        start = 0
        if cursor is not None:
            if not (isinstance(cursor, str) and cursor.isdigit() and int(cursor) <= len(items)):
                return error_bytes(
                    exchange.client_id, INVALID_PARAMS, f"Unknown cursor {cursor!r}; list from the start."
                )
            start = int(cursor)
        result: dict[str, Any] = {key: items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            result["nextCursor"] = str(start + self.page_size)
        missing = self.missing()
        if missing:
            result["_meta"] = {MISSING_META: missing}
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
                raise LookupError(f"Unknown {key[:-1]} {params.get('name')!r}; {key}/list shows what is offered.")
            params["name"] = route[1]
            return route[0], params
        if method == "resources/read":
            found = original_uri(str(params.get("uri")))
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
        found = original_uri(str(ref.get("uri")))
        if found is None:
            raise LookupError(f"Unknown resource {ref.get('uri')!r} in the completion reference.")
        ref["uri"] = found[1]
        params["ref"] = ref
        return found[0], params

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
            if message.get("method") == "notifications/progress" and token is not None:
                progress = {**message, "params": {**(message.get("params") or {}), "progressToken": token}}
                exchange.push(orjson.dumps(progress))

        timeout = self.registry.timeout_for(target, True, self.config.call_timeout)
        try:
            result = await upstream.request(
                method, params, timeout=timeout, on_message=related, headers=self._forwarded(target, exchange)
            )
        except UpstreamRequestError as exc:
            exchange.fail(exc.code, f"{target}: {exc.message}")
            return
        except UpstreamUnavailable as exc:
            self.registry.suspect(target)
            exchange.fail(CONNECTION_CLOSED, str(exc))
            return
        except UpstreamError as exc:
            exchange.fail(CONNECTION_CLOSED, str(exc))
            return
        if method == "resources/read":
            for content in result.get("contents") or ():
                if isinstance(content, dict) and isinstance(content.get("uri"), str):
                    content["uri"] = exposed_uri(target, content["uri"])
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
        return False

    async def close_session(self, session: Session) -> None:
        self._sessions.discard(session)
        self._calls.cancel_all(session)

    def discover_result(self) -> dict[str, Any]:
        server_info = {"name": self.config.server_name, "version": __version__}
        return discover_result(CAPABILITIES, server_info, self._instructions(), cache_scope="private")

    def watch(self, listener: Callable[[Message], None], uris: set[str]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def targets(self) -> Mapping[str, Any]:
        """The `/targets` document: every target's status, last error, tool count and handshake latency."""
        return {"targets": [state.describe() for _, state in sorted(self.registry.states.items())]}
