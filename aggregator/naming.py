"""Names and URIs the aggregator exposes: one namespace over many targets, reversible, safe for every client.

Tools and prompts become `<target><separator><name>`. Clients accept `[A-Za-z0-9_.-]` and at most 64 characters, so
other characters become `_` and long names are cut to a readable prefix plus a hash of the whole; two upstream names
can then meet, which the caller settles (it knows every name of the catalogue). Target names are DNS-label-like and
at most 40 characters, so the target part always survives shortening. Resource URIs cannot be renamed that way (they
are often templates), so they are wrapped whole: `plexus://<target>/<original>`, which a client's template expansion
leaves intact around the variables. Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_TARGET_NAME_LENGTH",
    "TARGET_NAME",
    "URI_SCHEME",
    "exposed_name",
    "exposed_uri",
    "original_uri",
    "prefix_applies",
    "safe",
    "valid_target_name",
]

MAX_NAME_LENGTH: Final = 64
"""The longest tool or prompt name MCP clients (and the LLM APIs behind them) accept."""

MAX_TARGET_NAME_LENGTH: Final = 40
"""Leaves room for a separator and 20 characters of the upstream name when a long name is shortened."""

TARGET_NAME: Final = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
"""DNS-label-like, so a target name is also a valid URI host and a Kubernetes object name."""

URI_SCHEME: Final = "plexus"
"""The scheme of rewritten resource URIs; the host is the target name."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_HASH_LENGTH: Final = 8
_URI_PREFIX: Final = f"{URI_SCHEME}://"


def valid_target_name(name: str) -> bool:
    """Whether `name` can name a target: `[a-z0-9-]`, not starting or ending with `-`, at most 40 characters."""
    return len(name) <= MAX_TARGET_NAME_LENGTH and TARGET_NAME.match(name) is not None


def safe(name: str) -> str:
    """`name` with every character outside `[A-Za-z0-9_.-]` replaced by `_` (one each); `_` for an empty name."""
    return _UNSAFE.sub("_", name) or "_"


def exposed_name(target: str, name: str, *, prefix: bool, separator: str) -> str:
    """The name clients see for upstream tool or prompt `name` of `target`: safe and at most 64 characters.

    Longer names keep their first 55 characters and end with `_` and 8 hex digits of the SHA-256 of the whole name
    (before unsafe characters are replaced), so distinct long names stay apart and every run gives the same result.
    """
    full = f"{target}{separator}{name}" if prefix else name
    exposed = safe(full)
    if len(exposed) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LENGTH]
        exposed = f"{exposed[: MAX_NAME_LENGTH - _HASH_LENGTH - 1]}_{digest}"
    return exposed


def exposed_uri(target: str, uri: str) -> str:
    """The URI (or URI template) clients see for `uri` of `target`: `plexus://<target>/<uri>`, `uri` verbatim."""
    return f"{_URI_PREFIX}{target}/{uri}"


def original_uri(exposed: str) -> tuple[str, str] | None:
    """(target, original URI) for a URI made by `exposed_uri`, or None for any other URI."""
    if exposed[: len(_URI_PREFIX)].lower() != _URI_PREFIX:
        return None
    target, slash, original = exposed[len(_URI_PREFIX) :].partition("/")
    if not slash or not valid_target_name(target):
        return None
    return target, original


def prefix_applies(mode: str, target_count: int) -> bool:
    """Whether exposed names carry the target prefix: always, never, or (conditional) with more than one target."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    if mode == "conditional":
        return target_count > 1
    raise ValueError(f"prefix mode must be 'always', 'conditional' or 'never', got {mode!r}")
