"""Everything the HTTP transports of one bridge share: settings, backend, sessions, metrics and the host guard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bridge.metrics import BridgeMetrics
from bridge.security import HostGuard
from bridge.sessions import SessionRegistry
from bridge.settings import BridgeSettings
from bridge.stdio.backend import StdioBackend

__all__ = ["BridgeState"]


@dataclass
class BridgeState:
    settings: BridgeSettings
    backend: StdioBackend
    sessions: SessionRegistry
    metrics: BridgeMetrics
    guard: HostGuard
    drain: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on SIGTERM: the bridge turns unready, refuses new sessions and ends its streams."""

    @property
    def draining(self) -> bool:
        return self.drain.is_set()
