"""Serving a REST API described by OpenAPI (3.0, 3.1, or Swagger 2.0) as MCP tools."""
