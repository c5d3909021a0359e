"""The era constants the bridge writes out (to keep the SDK import off start-up) still match the SDK's."""

from __future__ import annotations

import mcp_types.jsonrpc
import mcp_types.version

from bridge import eras, jsonrpc
from bridge.eras import modern_result, strip_envelope


def test_protocol_versions_match_the_sdk() -> None:
    """A new SDK release that adds a version fails here, not in a client."""
    assert eras.HANDSHAKE_VERSIONS == mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS
    assert eras.MODERN_VERSIONS == mcp_types.version.MODERN_PROTOCOL_VERSIONS
    assert eras.LATEST_HANDSHAKE_VERSION == mcp_types.version.LATEST_HANDSHAKE_VERSION


def test_error_codes_match_the_sdk() -> None:
    """Every JSON-RPC code the bridge writes out equals the SDK's constant of the same name."""
    for name in (
        "PARSE_ERROR",
        "INVALID_REQUEST",
        "METHOD_NOT_FOUND",
        "INVALID_PARAMS",
        "INTERNAL_ERROR",
        "CONNECTION_CLOSED",
        "REQUEST_TIMEOUT",
        "HEADER_MISMATCH",
        "UNSUPPORTED_PROTOCOL_VERSION",
    ):
        assert getattr(jsonrpc, name) == getattr(mcp_types.jsonrpc, name), name


def test_the_envelope_is_stripped_but_the_progress_token_kept() -> None:
    """A handshake-era server sees `_meta.progressToken` but none of the io.modelcontextprotocol/ keys."""
    message = {"params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": 3}}}
    strip_envelope(message)
    assert message == {"params": {"_meta": {"progressToken": 3}}}
    bare = {"params": {"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}, "name": "x"}}
    strip_envelope(bare)
    assert bare == {"params": {"name": "x"}}


def test_modern_results_get_the_required_fields_without_overwriting() -> None:
    """Lists get resultType, ttlMs and cacheScope; a value the server set stays."""
    listing: dict[str, object] = {"tools": [], "ttlMs": 5000}
    modern_result("tools/list", listing)
    assert listing == {"tools": [], "ttlMs": 5000, "resultType": "complete", "cacheScope": "private"}
    call: dict[str, object] = {"content": []}
    modern_result("tools/call", call)
    assert call == {"content": [], "resultType": "complete"}
