"""Newline-delimited JSON-RPC framing over a byte stream, as the MCP stdio transport defines it.

Lines are bounded: a child that writes a line longer than the limit loses that one message (logged with its size)
instead of growing the bridge's memory without bound or ending the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

__all__ = ["read_lines"]

logger = logging.getLogger(__name__)


async def read_lines(reader: asyncio.StreamReader, max_bytes: int) -> AsyncIterator[bytes]:
    """Yield each non-empty line (newline included) until end of stream.

    The reader's own `limit` bounds its buffer; a line longer than that or than `max_bytes` is dropped whole.
    """
    dropped = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() and not dropped:
                yield exc.partial
            return
        except asyncio.LimitOverrunError as exc:
            # Discard what is buffered of the oversized line; its tail arrives with the next readuntil.
            await reader.readexactly(exc.consumed)
            dropped += exc.consumed
            continue
        if dropped or len(line) > max_bytes:
            logger.error(
                "Dropped a %d-byte message from the MCP server: it exceeds the %d-byte limit (--max-message-bytes).",
                dropped + len(line),
                max_bytes,
            )
            dropped = 0
            continue
        if line.strip():
            yield line
