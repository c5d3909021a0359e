"""Translation between the 2026-07-28 per-request envelope and a server that speaks the 2025 handshake era.

A handshake-era server must not see the modern envelope keys in `_meta` (an SDK 2.x server rejects them once it
has locked into the handshake era), and a 2026-07-28 client rejects results without the fields that revision made
required. Both rules live here, applied at the message level.
"""

from __future__ import annotations

from typing import Any, Final

from bridge.jsonrpc import Message

__all__ = ["ENVELOPE_PREFIX", "SUBSCRIPTION_ID_KEY", "modern_result", "strip_envelope"]

ENVELOPE_PREFIX: Final = "io.modelcontextprotocol/"
SUBSCRIPTION_ID_KEY: Final = "io.modelcontextprotocol/subscriptionId"

_CACHEABLE: Final = frozenset(
    {"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"}
)
"""Results that carry cache hints at 2026-07-28 (`ttlMs`, `cacheScope`)."""


def strip_envelope(message: Message) -> None:
    """Remove the modern envelope keys from a request's `_meta`, leaving the progress token and any others."""
    params = message.get("params")
    if type(params) is not dict:
        return
    meta = params.get("_meta")
    if type(meta) is dict:
        for key in [k for k in meta if k.startswith(ENVELOPE_PREFIX)]:
            del meta[key]
        if not meta:
            del params["_meta"]


def modern_result(method: str, result: dict[str, Any]) -> None:
    """Add what a 2026-07-28 client requires of a handshake-era server's result.

    Cache hints say "do not reuse" (`ttlMs` 0, private): the server never said how long its answers stay true.
    """
    result.setdefault("resultType", "complete")
    if method in _CACHEABLE:
        result.setdefault("ttlMs", 0)
        result.setdefault("cacheScope", "private")
