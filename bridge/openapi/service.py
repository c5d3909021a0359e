"""From `--spec` to a serving backend: load, filter, apply overrides, find the base URL.

The overrides file (YAML) renames a tool, replaces its description, or hides it, keyed by the tool's generated name
or its operationId:

    tools:
      repos/get:            # operationId or generated tool name
        name: get_repository
        description: Get one repository by owner and name.
      meta/root:
        hidden: true
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yaml

from bridge.exceptions import ConfigError, SpecError
from bridge.openapi.backend import OpenAPIBackend
from bridge.openapi.loader import SYNC_VALIDATION_LIMIT, Spec, load_spec, validate_spec
from bridge.openapi.naming import MAX_NAME_LENGTH
from bridge.openapi.tools import Operation, Selector, build_operations
from bridge.settings import OpenAPISource

__all__ = ["build_backend"]

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_NAME_LENGTH}}}$")


def build_backend(source: OpenAPISource, request_timeout: float) -> OpenAPIBackend:
    """Everything that can fail about a spec fails here, before the bridge listens: a `ConfigError` says what."""
    spec = load_spec(source.spec)
    if spec.size <= SYNC_VALIDATION_LIMIT:
        problems = validate_spec(spec)
        if problems:
            raise problems[0]
    else:
        logger.info(
            "%s is %.1f MB: serving it now and validating it in the background (plexus-bridge openapi --check).",
            source.spec,
            spec.size / 1e6,
        )
    operations = build_operations(
        spec.document,
        include=[Selector.parse(text) for text in source.include],
        exclude=[Selector.parse(text) for text in source.exclude],
    )
    if source.overrides is not None:
        operations = apply_overrides(operations, _read_overrides(source.overrides))
    if not operations:
        raise ConfigError(f"No operation of {source.spec!r} is left to serve; check --include and --exclude.")
    base_url = source.base_url or server_url(spec)
    logger.info("Serving %d tools from %s against %s", len(operations), source.spec, base_url)
    return OpenAPIBackend(
        spec,
        operations,
        base_url=base_url,
        page_size=source.page_size,
        request_timeout=request_timeout,
        max_response_bytes=source.max_response_bytes,
        forward_headers=source.forward_headers,
    )


def server_url(spec: Spec) -> str:
    """The first `servers` entry, variables filled with their defaults, made absolute against the spec's URL."""
    servers = spec.document.get("servers") or []
    if not servers:
        raise ConfigError(f"{spec.source!r} lists no servers; give the API's address with --base-url.")
    server = servers[0]
    url = str(server.get("url", ""))
    for name, variable in (server.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str((variable or {}).get("default", "")))
    if not url.startswith(("http://", "https://")):
        if not spec.source.startswith(("http://", "https://")):
            raise ConfigError(
                f"The server URL {url!r} of {spec.source!r} is relative and the spec is a local file; "
                "give the API's address with --base-url."
            )
        url = urljoin(spec.source, url)
    return url


def _read_overrides(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--overrides {str(path)!r} cannot be read: {exc}") from exc
    tools = (data or {}).get("tools") if isinstance(data, dict) else None
    if not isinstance(tools, dict):
        raise ConfigError(f"--overrides {str(path)!r} must hold a 'tools:' mapping of tool names to changes.")
    return tools


def apply_overrides(operations: list[Operation], overrides: Mapping[str, Any]) -> list[Operation]:
    """Rename, redescribe or hide tools; an override naming no tool, or a rename that collides, is an error."""
    by_key: dict[str, Operation] = {}
    for op in operations:
        by_key[op.tool["name"]] = op
        if op.operation_id:
            by_key.setdefault(op.operation_id, op)
    result = list(operations)
    for key, change in overrides.items():
        found = by_key.get(str(key))
        if found is None:
            raise SpecError(f"The overrides name {key!r}, which is neither a tool name nor an operationId")
        if not isinstance(change, dict):
            raise ConfigError(f"The override of {key!r} must be a mapping (name, description, hidden).")
        op = found
        index = result.index(op)
        if change.get("hidden"):
            result.pop(index)
            continue
        if "name" in change and not _SAFE_NAME.match(str(change["name"])):
            raise ConfigError(f"The new name {change['name']!r} of {key!r} must match [A-Za-z0-9_.-], 64 at most.")
        if "description" in change:
            op.tool["description"] = str(change["description"])
        if "name" in change:
            op.tool["name"] = str(change["name"])
    names = [op.tool["name"] for op in result]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigError(f"After the overrides, tool name {duplicated[0]!r} is used twice; rename one of them.")
    return result
