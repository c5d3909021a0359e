"""The two protocol eras: which versions the bridge speaks, the 2026-07-28 envelope check, and the translation between
that per-request envelope and a server of the 2025 handshake era.

A handshake-era server must not see the modern envelope keys in `_meta` (an SDK 2.x server rejects them once it
has locked into the handshake era), and a 2026-07-28 client rejects results without the fields that revision made
required. Both rules live here, applied at the message level.

The envelope itself is checked by the SDK's own ladder (`mcp.shared.inbound`), so the bridge answers exactly as an
SDK server would. Importing the SDK costs about half a second, so it is loaded in the background at start-up
(`load_sdk`) instead of delaying readiness; a 2026-07-28 request waits for it only in the first instants.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any, Final

from bridge.jsonrpc import HEADER_MISMATCH, Message

__all__ = [
    "ENVELOPE_PREFIX",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "MODERN_VERSIONS",
    "SUBSCRIPTION_ID_KEY",
    "check_envelope",
    "discover_result",
    "http_status",
    "load_sdk",
    "modern_result",
    "strip_envelope",
]

# The versions of `mcp_types.version`, written out to keep the SDK import off the start-up path;
# tests/bridge/test_eras.py checks they still match.
HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""Revisions negotiated with `initialize`, oldest first."""
LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_VERSIONS[-1]
MODERN_VERSIONS: Final = ("2026-07-28",)
"""Revisions that use the per-request envelope."""

ENVELOPE_PREFIX: Final = "io.modelcontextprotocol/"
SUBSCRIPTION_ID_KEY: Final = "io.modelcontextprotocol/subscriptionId"

_CACHEABLE: Final = frozenset(
    {"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"}
)
"""Results that carry cache hints at 2026-07-28 (`ttlMs`, `cacheScope`)."""

_SDK_MODULE: Final = "mcp.shared.inbound"


async def load_sdk() -> ModuleType:
    """The SDK's envelope checks, imported in a worker thread the first time so the event loop keeps serving."""
    module = sys.modules.get(_SDK_MODULE)
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, _SDK_MODULE)
    return module


async def check_envelope(message: Message, headers: Iterable[tuple[bytes, bytes]]) -> tuple[int, int, str, Any] | None:
    """Run the SDK's 2026-07-28 request ladder; return (HTTP status, code, message, data) to refuse, else None.

    Checks the `_meta` envelope keys, that `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` agree with the body,
    that no routing header is repeated, and that the version is one the bridge serves.
    """
    inbound = await load_sdk()
    pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
    duplicated = inbound.find_duplicated_routing_header(pairs)
    if duplicated is not None:
        return 400, HEADER_MISMATCH, f"{duplicated} header appears more than once", None
    verdict = inbound.classify_inbound_request(message, headers=dict(pairs))
    if isinstance(verdict, inbound.InboundLadderRejection):
        return inbound.ERROR_CODE_HTTP_STATUS.get(verdict.code, 400), verdict.code, verdict.message, verdict.data
    return None


def http_status(code: int) -> int:
    """The HTTP status a 2026-07-28 reply with this JSON-RPC error code carries (the SDK's table; 200 if unlisted)."""
    inbound = sys.modules.get(_SDK_MODULE)
    status: int = inbound.ERROR_CODE_HTTP_STATUS.get(code, 200) if inbound is not None else 200
    return status


def discover_result(
    capabilities: dict[str, Any], server_info: dict[str, Any], instructions: str | None, *, cache_scope: str
) -> dict[str, Any]:
    """The `server/discover` answer: every version the bridge speaks, and what a handshake would have said."""
    result: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": [*MODERN_VERSIONS, *reversed(HANDSHAKE_VERSIONS)],
        "capabilities": capabilities,
        "cacheScope": cache_scope,
        "ttlMs": 0,
        "_meta": {"io.modelcontextprotocol/serverInfo": server_info},
    }
    if instructions:
        result["instructions"] = instructions
    return result


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
