"""The live set of targets: one upstream session each, its cached lists, and its health.

A published target set is applied by difference: new targets connect in the background, removed ones are closed,
changed ones are replaced. A target that cannot be reached is `down` (with the reason) and retried with backoff;
its cached lists are dropped so clients never see tools that cannot be called. Every change of what clients can
see calls `on_change` once.

Health is judged two ways: a ping every few seconds, and a circuit breaker on calls. A target whose calls fail to
reach it (no reply in time, connection lost) `BREAKER_THRESHOLD` times in a row is taken out at once, before the
next ping would notice, and the reconnect after backoff is its trial: lists and all, or it stays out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aggregator.catalog import KINDS, TargetLists
from aggregator.discovery import Target
from aggregator.exceptions import UpstreamError, UpstreamUnavailable
from aggregator.upstream import Message, Upstream

__all__ = ["Registry", "TargetState"]

logger = logging.getLogger(__name__)

MAX_PAGES: Final = 100
"""Pages fetched of one list; a server whose cursors never end cannot hold the aggregator."""

RETRY_INITIAL: Final = 0.5
RETRY_MAX: Final = 30.0
"""Backoff bounds, in seconds, between attempts to reach a target that is down."""

HEALTH_INTERVAL: Final = 5.0
"""Seconds between health checks (a ping) of a target that is up."""

CONNECT_TIMEOUT: Final = 10.0
"""Seconds a target has to complete the MCP handshake."""

BREAKER_THRESHOLD: Final = 5
"""Calls in a row that fail to reach a target before it is taken out (the circuit opens)."""


@dataclass
class TargetState:
    """What the aggregator knows of one target right now (also what `/targets` shows)."""

    target: Target
    status: str = "connecting"
    error: str | None = None
    upstream: Upstream | None = None
    lists: TargetLists = field(default_factory=TargetLists)
    latency_ms: float | None = None
    task: asyncio.Task[None] | None = None
    refresh: asyncio.Event = field(default_factory=asyncio.Event)
    changed_kinds: set[str] = field(default_factory=set)
    failures: int = 0
    """Calls in a row that failed to reach the target."""
    tripped: str | None = None
    """Why the circuit breaker took the target out, until the `_keep` loop acts on it."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.target.name,
            "url": self.target.url,
            "transport": self.target.transport,
            "status": self.status,
            "error": self.error,
            "tools": len(self.lists.items.get("tools", ())),
            "prompts": len(self.lists.items.get("prompts", ())),
            "resources": len(self.lists.items.get("resources", ())),
            "latency_ms": self.latency_ms,
        }


class Registry:
    """Keeps an upstream session per target and their lists fresh."""

    def __init__(
        self,
        *,
        list_timeout: float,
        client_info: Mapping[str, Any],
        capabilities: Mapping[str, Any],
        on_change: Callable[[], None],
        on_notification: Callable[[str, Message], None],
        on_request: Callable[[str, Message], Awaitable[Message]],
        on_up: Callable[[str, Upstream], Coroutine[Any, Any, None]],
    ) -> None:
        """`on_request` answers a target's requests that came with no call; `on_up` restores what clients set up
        on a target (log level, subscriptions) each time its session is new.
        """
        self.states: dict[str, TargetState] = {}
        self._list_timeout = list_timeout
        self._client_info = dict(client_info)
        self._capabilities = dict(capabilities)
        self._on_change = on_change
        self._on_notification = on_notification
        self._on_request = on_request
        self._on_up = on_up

    async def stop(self) -> None:
        await self.apply({})

    async def apply(self, targets: Mapping[str, Target]) -> None:
        """Make the live set match `targets`."""
        for name in list(self.states):
            if name not in targets or targets[name] != self.states[name].target:
                await self._remove(name)
        for name, target in targets.items():
            if name not in self.states:
                state = TargetState(target)
                self.states[name] = state
                state.task = asyncio.create_task(self._keep(state), name=f"target-{name}")
        self._on_change()

    async def _remove(self, name: str) -> None:
        state = self.states.pop(name)
        if state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task
        if state.upstream is not None:
            await state.upstream.close()

    def upstream(self, name: str) -> Upstream | None:
        state = self.states.get(name)
        return state.upstream if state is not None and state.status == "up" else None

    def timeout_for(self, name: str, call: bool, default: float) -> float:
        state = self.states.get(name)
        if state is None:
            return default
        policy = state.target.policy
        chosen = policy.call_timeout if call else policy.list_timeout
        return chosen if chosen is not None else default

    async def _keep(self, state: TargetState) -> None:
        """Connect, fetch the lists, refresh them on list_changed; on failure mark down and retry with backoff."""
        if state.target.unavailable:
            # Nothing to dial: down with the source's reason until the source publishes the target anew.
            state.status, state.error = "down", state.target.unavailable
            return
        delay = RETRY_INITIAL
        while True:
            try:
                await self._connect(state)
                delay = RETRY_INITIAL
                while True:
                    try:
                        await asyncio.wait_for(state.refresh.wait(), HEALTH_INTERVAL)
                    except TimeoutError:
                        await self._check(state)
                        continue
                    state.refresh.clear()
                    if state.tripped:
                        raise UpstreamUnavailable(state.target.name, state.tripped)
                    kinds, state.changed_kinds = state.changed_kinds, set()
                    if kinds:
                        await self._fetch(state, kinds)
                        self._on_change()
                    else:
                        await self._check(state)
            except UpstreamError as exc:
                was_up = state.status == "up"
                state.status, state.error = "down", str(exc)
                state.tripped, state.failures = None, 0
                state.lists = TargetLists()
                if was_up:
                    self._on_change()  # before closing, which may wait on the dead target for a while
                if state.upstream is not None:
                    await state.upstream.close()
                    state.upstream = None
                logger.warning("%s; retrying in %.1f s.", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _check(self, state: TargetState) -> None:
        """A ping within the list deadline; a target that fails it is down (raises)."""
        assert state.upstream is not None
        started = time.perf_counter()
        await state.upstream.request(
            "ping", None, timeout=self.timeout_for(state.target.name, False, self._list_timeout)
        )
        state.latency_ms = (time.perf_counter() - started) * 1000

    def record(self, name: str, reached: bool, error: str = "") -> None:
        """Count a call's outcome: one that failed to reach the target makes a health check due now, and
        `BREAKER_THRESHOLD` of them in a row take the target out.
        """
        state = self.states.get(name)
        if state is None or state.status != "up":
            return
        if reached:
            state.failures = 0
            return
        state.failures += 1
        if state.failures >= BREAKER_THRESHOLD:
            state.tripped = f"{error} (circuit opened after {state.failures} failed calls in a row)"
        state.refresh.set()

    async def _connect(self, state: TargetState) -> None:
        target = state.target
        upstream = Upstream(
            target.name,
            target.url,
            transport=target.transport,
            client_info=self._client_info,
            capabilities=self._capabilities,
            on_notification=lambda message: self._notified(state, message),
            on_request=lambda message: self._on_request(target.name, message),
            on_session=lambda: self._on_up(target.name, upstream),
        )
        state.upstream = upstream
        started = time.perf_counter()
        init = await upstream.connect(CONNECT_TIMEOUT)
        state.latency_ms = (time.perf_counter() - started) * 1000
        state.lists.instructions = init.get("instructions")
        await self._fetch(state, {kind.key for kind in KINDS})
        await self._on_up(target.name, upstream)
        state.status, state.error = "up", None
        logger.info("Target %r is up: %d tools.", target.name, len(state.lists.items.get("tools", ())))
        self._on_change()

    async def _fetch(self, state: TargetState, keys: set[str]) -> None:
        upstream = state.upstream
        assert upstream is not None
        capabilities = upstream.capabilities
        timeout = self.timeout_for(state.target.name, False, self._list_timeout)
        for kind in KINDS:
            if kind.key not in keys:
                continue
            if kind.capability not in capabilities:
                state.lists.items[kind.key] = []
                continue
            items: list[dict[str, Any]] = []
            cursor: Any = None
            async with asyncio.timeout(timeout * MAX_PAGES):
                for _ in range(MAX_PAGES):
                    result = await upstream.request(
                        kind.method, {"cursor": cursor} if cursor else None, timeout=timeout
                    )
                    items.extend(item for item in result.get(kind.key) or () if isinstance(item, dict))
                    cursor = result.get("nextCursor")
                    if not cursor:
                        break
            state.lists.items[kind.key] = items

    def _notified(self, state: TargetState, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        changed = {
            "notifications/tools/list_changed": {"tools"},
            "notifications/prompts/list_changed": {"prompts"},
            "notifications/resources/list_changed": {"resources", "resourceTemplates"},
        }.get(method)
        if changed:
            state.changed_kinds |= changed
            state.refresh.set()
        else:
            self._on_notification(state.target.name, message)
