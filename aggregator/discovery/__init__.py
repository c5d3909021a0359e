"""What the aggregator serves: targets, their policies, and the sources that discover them.

Discovery is kept apart from serving so that a static file (`aggregator.discovery.static`) and a future Kubernetes
watch publish the same immutable `Target` values through the same `Source.run(publish)` call; the aggregator only
ever sees complete target sets. This module is shared by every source, so it imports no HTTP or Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Publish", "Source", "Target", "TargetPolicy", "Transport"]

Transport = Literal["streamable-http", "sse"]


@dataclass(frozen=True)
class TargetPolicy:
    """What of one target is exposed and how: filters, renames, forwarded headers, deadlines."""

    include: tuple[str, ...] = ()
    """Globs on upstream tool and prompt names; empty exposes all."""
    exclude: tuple[str, ...] = ()
    """Globs on upstream tool and prompt names left out, applied after `include`."""
    rename: Mapping[str, str] = field(default_factory=dict)
    """Upstream name to exposed name, before the target prefix is added."""
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """Upstream tool name to the description clients see instead of the target's own."""
    forward_headers: tuple[str, ...] = ()
    """Client HTTP headers passed on to this target (lowercase); no others are."""
    list_timeout: float | None = None
    """Seconds this target gets to answer a list; None means the aggregator-wide value."""
    call_timeout: float | None = None
    """Seconds this target gets to answer a call; None means the aggregator-wide value."""


@dataclass(frozen=True)
class Target:
    """One MCP server behind the aggregator, reached over HTTP."""

    name: str
    """Unique, DNS-label-like (`[a-z0-9-]`, at most 40 characters); the prefix of its exposed names."""
    url: str
    """The target's MCP endpoint; empty for a `launch` target until the dev launcher fills it in."""
    transport: Transport = "streamable-http"
    policy: TargetPolicy = TargetPolicy()
    launch: Mapping[str, Any] | None = None
    """Dev mode only: {"stdio": [command, args...]} or {"openapi": {"spec": ..., "base_url": ...}}."""
    unavailable: str | None = None
    """Why the target cannot be reached at all right now (no ready endpoint): it is down, and nothing is dialled."""


Publish = Callable[[Mapping[str, Target]], None]
"""Receives the complete target set, name to `Target`."""


class Source(Protocol):
    """Anything that discovers targets."""

    async def run(self, publish: Publish) -> None:
        """Publish the complete target set (name -> Target) now and after every change; run until cancelled."""
        ...
