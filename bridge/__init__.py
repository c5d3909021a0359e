"""Plexus bridge: one stdio MCP server (or OpenAPI-described REST API) served as an HTTP MCP server."""

__version__ = "0.1.0"
