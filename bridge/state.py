"""Everything the HTTP transports of one bridge share: settings, backend, sessions, metrics and the host guard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bridge.backend import Backend
from bridge.metrics import BridgeMetrics
from bridge.security import HostGuard
from bridge.sessions import SessionRegistry
from bridge.settings import BridgeSettings

__all__ = ["BridgeState"]


@dataclass
class BridgeState:
    settings: BridgeSettings
    backend: Backend
    sessions: SessionRegistry
    metrics: BridgeMetrics
    guard: HostGuard
    drain: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on SIGTERM: the bridge turns unready, refuses new sessions and ends its streams."""

    @property
    def draining(self) -> bool:
        return self.drain.is_set()
