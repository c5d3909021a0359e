"""Tool names from OpenAPI operations: safe for every MCP client, short enough, unique, and stable.

Clients accept `[A-Za-z0-9_.-]` and at most 64 characters. An `operationId` is kept as far as it can be (other
characters become `_`, never deleted, so `migrations/list-for-org` stays readable); an operation without one is
named from its method and path. Names that still collide all get a suffix hashed from their own method and path,
so a tool's name never depends on which other operations exist.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_NAME_LENGTH", "tool_names"]

MAX_NAME_LENGTH: Final = 64
"""The longest tool name MCP clients accept."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_HASH_LENGTH: Final = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def _safe(raw: str) -> str:
    name = _UNSAFE.sub("_", raw).strip("_") or "operation"
    if len(name) > MAX_NAME_LENGTH:
        # Shortened deterministically: a prefix, then a hash of the whole, so two long names stay apart.
        name = name[: MAX_NAME_LENGTH - _HASH_LENGTH - 1] + "_" + _digest(raw)
    return name


def base_name(operation_id: str | None, method: str, path: str) -> str:
    """The name an operation asks for, before collisions are settled."""
    if operation_id:
        return _safe(operation_id)
    return _safe(f"{method.lower()}/{path}")


def tool_names(operations: Iterable[tuple[str | None, str, str]]) -> list[str]:
    """Names for (operationId, method, path) triples, in order; colliding names all get a hash of method and path."""
    wanted = [(base_name(op_id, method, path), method.upper(), path) for op_id, method, path in operations]
    count: defaultdict[str, int] = defaultdict(int)
    for name, _, _ in wanted:
        count[name] += 1
    names = []
    for name, method, path in wanted:
        if count[name] > 1:
            suffix = "_" + _digest(f"{method} {path}")
            name = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
        names.append(name)
    return names
