"""A trivial REST endpoint for the OpenAPI bridge benchmark: `GET /echo?message=X` answers X as text/plain at once.

Uvicorn with uvloop and httptools, raw ASGI: the REST side costs as little as it can, so the benchmark measures
the bridge. `python bench/rest_echo.py PORT`.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qs

import uvicorn

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    message = parse_qs(scope["query_string"].decode()).get("message", [""])[0].encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [*_TEXT, (b"content-length", b"%d" % len(message))]}
    )
    await send({"type": "http.response.body", "body": message})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", access_log=False,
        log_level="warning", lifespan="off",
    )  # fmt: skip
