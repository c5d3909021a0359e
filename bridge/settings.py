"""Validated settings of one bridge process; bad values raise `ConfigError` naming the value and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bridge.exceptions import ConfigError
from bridge.stdio.supervisor import RestartPolicy

__all__ = ["BridgeSettings", "SessionMode"]

SessionMode = Literal["shared", "per-session"]


@dataclass(frozen=True)
class BridgeSettings:
    """What `plexus-bridge stdio` is told by its flags and `PLEXUS_*` environment variables."""

    command: tuple[str, ...] = ()
    fifo: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    session_mode: SessionMode = "shared"
    max_sessions: int = 1000
    max_children: int = 16
    session_idle_timeout: float = 1800.0
    max_inflight_per_session: int = 64
    max_body_bytes: int = 4 * 1024 * 1024
    max_message_bytes: int = 16 * 1024 * 1024
    request_timeout: float = 300.0
    drain_timeout: float = 30.0
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    log_level: str = "info"

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
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}.")
        for name in ("max_sessions", "max_children", "max_inflight_per_session", "max_body_bytes", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}.")
        for name in ("session_idle_timeout", "request_timeout", "drain_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds.")
