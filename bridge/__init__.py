"""Plexus bridge: one stdio MCP server served as an HTTP MCP server (streamable HTTP, both eras, legacy SSE)."""

from bridge._version import __version__
from bridge.exceptions import BridgeError, ConfigError, ServerUnavailable, SpecError
from bridge.http import create_app
from bridge.settings import BridgeSettings, OpenAPISource, SessionMode, StdioSource
from bridge.stdio.supervisor import RestartPolicy

__all__ = [
    "BridgeError",
    "BridgeSettings",
    "ConfigError",
    "OpenAPISource",
    "RestartPolicy",
    "ServerUnavailable",
    "SessionMode",
    "SpecError",
    "StdioSource",
    "__version__",
    "create_app",
]
