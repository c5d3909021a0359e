"""Calling one operation: tool arguments checked against the tool's schema, turned into an HTTP request, sent with
`bridge.http1`, and the response turned into a `CallToolResult`.

Arguments are checked with jsonschema-rs: about ten times faster than jsonschema on this hot path, and its regex
engine accepts the ECMA-262 patterns (`\\p{L}`) that specs use and Python's `re` rejects.

The HTTP client is the bridge's own lean one, not httpx2 nor aiohttp: on this path the client's CPU per request is
the bridge's ceiling (measured at 16 concurrent requests: httpx2 about 480 µs, aiohttp about 130 µs, `bridge.http1`
about 35 µs). Every client error is translated here, at the seam, into a tool error naming the API and the cause.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode

import jsonschema_rs
import orjson

from bridge.http1 import Client, HTTPError
from bridge.openapi.auth import Credentials, RequestParts
from bridge.openapi.tools import Operation, Parameter

__all__ = ["Invoker"]

logger = logging.getLogger(__name__)

MAX_ERRORS_LISTED: Final = 20
"""Invalid-argument errors listed in one result; a badly wrong call would otherwise produce a wall of text."""

ERROR_EXCERPT: Final = 2000
"""Characters of an error response's body quoted in the tool result."""

_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
_TEXTUAL = re.compile(r"^(text/|application/(xml|javascript|x-www-form-urlencoded|yaml|x-yaml))|[+/](xml|yaml)$")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _without_patterns(schema: Any) -> Any:
    """A copy for validation only, with every `pattern` dropped (for the rare one the regex engine rejects)."""
    if isinstance(schema, dict):
        return {key: _without_patterns(value) for key, value in schema.items() if key != "pattern"}
    if isinstance(schema, list):
        return [_without_patterns(item) for item in schema]
    return schema


def _serialize(param: Parameter, value: Any) -> list[tuple[str, str]]:
    """Query pairs for a value, following the parameter's style and explode (OpenAPI 3 serialization rules)."""
    if isinstance(value, list):
        if param.style == "form" and param.explode:
            return [(param.name, _text(item)) for item in value]
        separator = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(param.style, ",")
        return [(param.name, separator.join(_text(item) for item in value))]
    if isinstance(value, dict):
        if param.style == "deepObject":
            return [(f"{param.name}[{key}]", _text(item)) for key, item in value.items()]
        if param.explode:
            return [(str(key), _text(item)) for key, item in value.items()]
        return [(param.name, ",".join(f"{key},{_text(item)}" for key, item in value.items()))]
    return [(param.name, _text(value))]


def _simple(value: Any) -> str:
    """Path and header serialization (style `simple`): lists and objects comma-joined."""
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{key},{_text(item)}" for key, item in value.items())
    return _text(value)


def _multipart(boundary: str, fields: Mapping[str, Any]) -> bytes:
    """A multipart/form-data body of text fields (RFC 7578); names are quoted, quotes and line breaks escaped."""
    chunks = []
    for name, value in fields.items():
        escaped = str(name).replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{escaped}"\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
            + _text(value).encode()
            + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


class Invoker:
    """Calls operations on one REST API through a shared client with pooled keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        client: Client,
        credentials: Credentials,
        *,
        max_response_bytes: int,
        timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client
        self._timeout = timeout
        self._credentials = credentials
        self._max_response_bytes = max_response_bytes
        self._validators: dict[str, Any] = {}
        self._output_validators: dict[str, Any] = {}

    def _validator(self, operation: Operation) -> Any:
        """The tool's compiled argument validator (built on first use: a big spec has thousands of tools)."""
        name = operation.tool["name"]
        validator = self._validators.get(name)
        if validator is None:
            schema = operation.tool["inputSchema"]
            try:
                validator = jsonschema_rs.validator_for(schema, validate_formats=True)
            except (ValueError, jsonschema_rs.ValidationError) as exc:
                logger.warning("Tool %s: its schema does not compile (%s); checking it without patterns.", name, exc)
                validator = jsonschema_rs.validator_for(_without_patterns(schema), validate_formats=True)
            self._validators[name] = validator
        return validator

    def _output_problem(self, operation: Operation, structured: Any) -> str | None:
        """Why `structured` breaks the tool's output schema, or None when it fits."""
        name = operation.tool["name"]
        validator = self._output_validators.get(name)
        if validator is None:
            validator = self._output_validators[name] = jsonschema_rs.validator_for(
                _without_patterns(operation.tool["outputSchema"])
            )
        error = next(iter(validator.iter_errors(structured)), None)
        if error is None:
            return None
        return f"{'/'.join(map(str, error.instance_path)) or '(top)'}: {error.message}"

    def check(self, operation: Operation, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
        """An `isError` result listing each invalid argument, or None when the arguments fit the schema."""
        errors = sorted(
            self._validator(operation).iter_errors(arguments), key=lambda e: list(map(str, e.instance_path))
        )
        if not errors:
            return None
        lines = [
            f"- {'/'.join(str(p) for p in error.instance_path) or '(arguments)'}: {error.message}"
            for error in errors[:MAX_ERRORS_LISTED]
        ]
        if len(errors) > MAX_ERRORS_LISTED:
            lines.append(f"- ... and {len(errors) - MAX_ERRORS_LISTED} more")
        return _error(f"Invalid arguments for {operation.tool['name']}; nothing was sent:\n" + "\n".join(lines))

    async def call(
        self, operation: Operation, arguments: Mapping[str, Any], forwarded: Mapping[str, str]
    ) -> dict[str, Any]:
        """Validate, send and translate one call; never raises for a problem of the API or the network."""
        invalid = self.check(operation, arguments)
        if invalid is not None:
            return invalid
        path = operation.path
        parts = RequestParts(headers=dict(forwarded), query=[])
        for param in operation.parameters:
            if param.argument not in arguments:
                continue
            value = arguments[param.argument]
            if value is None:
                continue  # null means "not given": never the word None on the wire
            if param.location == "path":
                # Percent-encoded whole: a value cannot add segments, a query or a host (`.`/`..` fail validation).
                path = path.replace("{" + param.name + "}", quote(_simple(value), safe=""))
            elif param.location == "query":
                parts.query.extend(_serialize(param, value))
            elif param.location == "header":
                header = _simple(value)
                if not _HEADER_VALUE.match(header):
                    return _error(
                        f"Argument {param.argument!r} cannot be sent as an HTTP header: only visible ASCII, "
                        "spaces and tabs can be."
                    )
                parts.headers[param.name] = header
            else:
                parts.cookies[param.name] = _simple(value)
        data = self._body(operation, arguments, parts)
        requirement = self._credentials.choose(operation.security)
        if requirement is None and operation.security and not any(not alt for alt in operation.security):
            logger.debug("No credentials for %s; calling it without", operation.tool["name"])
        url = self.base_url + quote(path, safe="/%:@!$&'()*+,;=")
        if parts.query:
            url += "?" + urlencode(parts.query)
        try:
            async with asyncio.timeout(self._timeout):
                if requirement:
                    await self._credentials.apply(requirement, parts, self._client)
                if parts.cookies:
                    parts.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in parts.cookies.items())
                response = await self._client.request(operation.method, url, parts.headers, data)
                try:
                    body = await response.read(self._max_response_bytes)
                finally:
                    response.release()
        except PermissionError as exc:
            return _error(str(exc))
        except (HTTPError, ValueError) as exc:
            return _error(f"Could not reach the REST API at {self.base_url}: {exc}.")
        except TimeoutError:
            return _error(f"The REST API at {self.base_url} did not answer within {self._timeout:g} s.")
        if len(body) > self._max_response_bytes:
            return _error(
                f"{operation.method} {path} answered more than {self._max_response_bytes} bytes "
                "(--max-response-bytes); narrow the request (pagination, filters)."
            )
        status, reason, content_type = response.status, response.reason, response.content_type
        if status == 401 and requirement:
            self._credentials.invalidate(requirement)
        if status >= 400:
            text = body[:ERROR_EXCERPT].decode(errors="replace")
            hint = ""
            if status in (401, 403) and requirement is None and operation.security:
                hint = f" (no credentials configured: set {self._credentials.missing_hint(operation.security)})"
            return _error(f"HTTP {status} {reason or ''} from {operation.method} {path}{hint}: {text}".strip())
        return self._result(operation, status, content_type, body, url)

    def _body(self, operation: Operation, arguments: Mapping[str, Any], parts: RequestParts) -> bytes:
        body = operation.body
        if body is None:
            return b""
        if body.argument is not None:
            if arguments.get(body.argument) is None:
                return b""
            value: Any = arguments[body.argument]
        else:
            value = {prop: arguments[arg] for arg, prop in body.fields.items() if arg in arguments}
        media_type = body.media_type.split(";", 1)[0].strip().lower()
        if media_type == "multipart/form-data" and isinstance(value, dict):
            boundary = secrets.token_hex(16)
            parts.headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            return _multipart(boundary, value)
        parts.headers["Content-Type"] = body.media_type
        if media_type == "application/x-www-form-urlencoded" and isinstance(value, dict):
            return urlencode([(key, _text(item)) for key, item in value.items()]).encode()
        if media_type.endswith("json"):
            return orjson.dumps(value)
        if isinstance(value, bytes):
            return value
        return (value if isinstance(value, str) else _text(value)).encode()

    def _result(self, operation: Operation, status: int, content_type: str, body: bytes, url: str) -> dict[str, Any]:
        if not body:
            return {"content": [{"type": "text", "text": f"HTTP {status}, no content."}]}
        if content_type.endswith("json"):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return {"content": [{"type": "text", "text": body.decode(errors="replace")}]}
            text = body.decode(errors="replace")
            result: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
            if "outputSchema" in operation.tool:
                structured = {"result": data} if operation.wraps_result else data
                problem = self._output_problem(operation, structured)
                if problem is not None:
                    # Clients check structured content against the output schema and would drop the whole result.
                    return _error(f"The API's answer does not match {operation.tool['name']}'s output schema "
                                  f"({problem}); the answer was: {text[:ERROR_EXCERPT]}")  # fmt: skip
                result["structuredContent"] = structured
            return result
        if content_type.startswith("image/"):
            return {"content": [{"type": "image", "data": base64.b64encode(body).decode(), "mimeType": content_type}]}
        if _TEXTUAL.search(content_type) or not content_type:
            return {"content": [{"type": "text", "text": body.decode(errors="replace")}]}
        blob = {"uri": url, "mimeType": content_type, "blob": base64.b64encode(body).decode()}
        return {"content": [{"type": "resource", "resource": blob}]}
