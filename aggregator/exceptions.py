"""Errors the aggregator raises and callers catch.

    AggregatorError
    ├── ConfigError                bad flags, environment or files; the message names the value and the fix
    └── UpstreamError              one upstream MCP server failed a call; `target` names it
        ├── UpstreamUnavailable    cannot connect, timed out, HTTP 5xx, or the session was lost and re-init failed
        ├── UpstreamProtocolError  the upstream answered something that is not valid MCP over JSON-RPC
        └── UpstreamRequestError   the upstream answered a JSON-RPC error: `code`, `message`, `data`

Misuse of the Python API raises built-in exceptions instead.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AggregatorError",
    "ConfigError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamRequestError",
    "UpstreamUnavailable",
]


class AggregatorError(Exception):
    """Base class of every error the aggregator raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration cannot work; the message says which value and what to do."""


class UpstreamError(AggregatorError):
    """A call to one upstream failed; `target` is the upstream's name, the message says what happened."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(message)
        self.target = target


class UpstreamUnavailable(UpstreamError):
    """The upstream cannot be reached or did not answer in time; retrying later may succeed."""


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something that is not valid MCP over JSON-RPC (a bug or a misconfigured URL)."""


class UpstreamRequestError(UpstreamError):
    """The upstream answered the request with a JSON-RPC error, kept as is so it can be passed on to the client."""

    def __init__(self, target: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(target, f"Target {target!r} answered error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data
