"""Validated settings of one bridge process; bad values raise `ConfigError` naming the value and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bridge.exceptions import ConfigError
from bridge.stdio.supervisor import RestartPolicy

__all__ = ["BridgeSettings", "OpenAPISource", "SessionMode", "StdioSource"]

SessionMode = Literal["shared", "per-session"]


def _at_least_one(owner: object, *names: str) -> None:
    for name in names:
        if getattr(owner, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(owner, name)}.")


@dataclass(frozen=True)
class StdioSource:
    """A stdio MCP server: a command the bridge starts, or FIFOs to a server in another container."""

    command: tuple[str, ...] = ()
    fifo: Path | None = None
    session_mode: SessionMode = "shared"
    max_children: int = 16
    max_message_bytes: int = 16 * 1024 * 1024
    restart: RestartPolicy = field(default_factory=RestartPolicy)

    def __post_init__(self) -> None:
        if bool(self.command) == (self.fifo is not None):
            raise ConfigError(
                "Give the MCP server either as a command after '--' (plexus-bridge stdio -- npx -y SERVER) "
                "or as --fifo DIR for a server in another container, not both and not neither."
            )
        if self.session_mode not in ("shared", "per-session"):
            raise ConfigError(f"--session-mode must be 'shared' or 'per-session', got {self.session_mode!r}.")
        if self.fifo is not None and self.session_mode == "per-session":
            raise ConfigError("--fifo serves exactly one server process, so it works only with --session-mode shared.")
        _at_least_one(self, "max_children", "max_message_bytes")


@dataclass(frozen=True)
class OpenAPISource:
    """A REST API described by an OpenAPI (or Swagger 2.0) document."""

    spec: str
    base_url: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    overrides: Path | None = None
    max_response_bytes: int = 8 * 1024 * 1024
    forward_headers: tuple[str, ...] = ()
    page_size: int = 100

    def __post_init__(self) -> None:
        if not self.spec:
            raise ConfigError("--spec is required: a path or an http(s) URL of the OpenAPI document.")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--base-url must start with http:// or https://, got {self.base_url!r}.")
        _at_least_one(self, "max_response_bytes", "page_size")


@dataclass(frozen=True)
class BridgeSettings:
    """What `plexus-bridge` is told by its flags and `PLEXUS_*` environment variables."""

    source: StdioSource | OpenAPISource | None
    """What to serve; None when the embedding app (the aggregator) hands `create_app` a backend of its own."""
    host: str = "127.0.0.1"
    port: int = 8080
    max_sessions: int = 1000
    session_idle_timeout: float = 1800.0
    max_inflight_per_session: int = 64
    max_body_bytes: int = 4 * 1024 * 1024
    request_timeout: float = 300.0
    startup_timeout: float = 30.0
    drain_timeout: float = 30.0
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}.")
        _at_least_one(self, "max_sessions", "max_inflight_per_session", "max_body_bytes")
        for name in ("session_idle_timeout", "request_timeout", "startup_timeout", "drain_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds.")
