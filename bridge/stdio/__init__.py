"""Serving stdio MCP servers: the process links, the supervisor that restarts them, and the relay."""
