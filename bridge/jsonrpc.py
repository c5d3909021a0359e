"""JSON-RPC envelopes on the wire, and the one place where failures become JSON-RPC errors.

The relay forwards messages as dicts decoded with orjson; this module names the shapes it tells apart and builds
every error the bridge itself answers, with the codes the MCP types define, so a client always gets a message that
says what went wrong and what to do.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = [
    "CONNECTION_CLOSED",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LOG_LEVELS",
    "METHOD_NOT_FOUND",
    "OVERLOADED",
    "PARSE_ERROR",
    "REQUEST_TIMEOUT",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "Message",
    "RequestId",
    "dumps",
    "error",
    "error_bytes",
    "is_notification",
    "is_request",
    "is_response",
    "result_bytes",
]

RequestId = str | int
Message = dict[str, Any]

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities as MCP names them (`logging/setLevel`, `notifications/message`), least severe first."""

# The codes of `mcp_types.jsonrpc`, written out because importing `mcp_types` costs about 0.3 s of the bridge's cold
# start (it builds the pydantic models of both protocol eras); tests/bridge/test_jsonrpc.py checks they still match.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
CONNECTION_CLOSED: Final = -32000
REQUEST_TIMEOUT: Final = -32001
HEADER_MISMATCH: Final = -32020
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

OVERLOADED: Final = -32003
"""Server-defined code: a limit (sessions, in-flight requests) refused the request; retrying later may succeed."""

dumps = orjson.dumps


def is_request(message: Message) -> bool:
    """A request carries a method and an id."""
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    """A notification carries a method and no id."""
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    """A response carries an id and a result or an error, never a method."""
    return "method" not in message and "id" in message and ("result" in message or "error" in message)


def error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> Message:
    """Build a JSON-RPC error response; `id` stays `null` when the request id could not be read."""
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def error_bytes(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    """Serialized form of `error`."""
    return orjson.dumps(error(request_id, code, message, data))


def result_bytes(request_id: RequestId, result: Any) -> bytes:
    """Serialized JSON-RPC success response."""
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
