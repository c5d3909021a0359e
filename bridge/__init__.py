"""Plexus bridge: one stdio MCP server served as an HTTP MCP server (streamable HTTP, both eras, legacy SSE)."""

from bridge._version import __version__
from bridge.exceptions import BridgeError, ConfigError, ServerUnavailable
from bridge.http import create_app
from bridge.settings import BridgeSettings, SessionMode
from bridge.stdio.supervisor import RestartPolicy

__all__ = [
    "BridgeError",
    "BridgeSettings",
    "ConfigError",
    "RestartPolicy",
    "ServerUnavailable",
    "SessionMode",
    "__version__",
    "create_app",
]
