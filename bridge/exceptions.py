"""Errors the bridge raises and callers catch.

    BridgeError
    ├── ConfigError        bad flags, environment or files; the message names the value and the fix
    │   └── SpecError      an OpenAPI document that cannot be served; `pointer` names where (RFC 6901)
    └── ServerUnavailable  the MCP server cannot take a request now (starting, restarting, gone, not reading)

Misuse of the Python API raises built-in exceptions instead.
"""

from __future__ import annotations

__all__ = ["BridgeError", "ConfigError", "ServerUnavailable", "SpecError"]


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration cannot work; the message says which value and what to do."""


class SpecError(ConfigError):
    """An OpenAPI document that cannot be served; the message and `pointer` name the place (a JSON pointer)."""

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(f"{message} (at {pointer or '/'})")
        self.detail = message
        self.pointer = pointer


class ServerUnavailable(BridgeError):
    """The MCP server behind the bridge cannot take a request right now."""
