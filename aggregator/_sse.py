"""An incremental Server-Sent Events parser (the WHATWG event-stream rules), bounded in memory.

Upstream MCP servers answer with event streams whose chunks split lines and events anywhere; this parser takes raw
chunks as they arrive and returns complete events, so a reply is handled the moment its blank line is read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Final, NamedTuple

__all__ = ["SSEError", "SSEEvent", "SSEParser", "read_events"]

_BOM: Final = b"\xef\xbb\xbf"


class SSEError(ValueError):
    """The stream broke a limit (an event or a line larger than allowed)."""


class SSEEvent(NamedTuple):
    event: str
    """The `event:` field, `message` when absent."""
    data: bytes
    """The `data:` lines joined with newlines."""
    id: str | None
    """The stream's last event id when this event was dispatched."""


class SSEParser:
    """Feed byte chunks, get complete events; comments (`: ping`) and unknown fields are ignored."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._buffer = bytearray()
        self._held_cr = False
        self._started = False
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse one chunk; lines may end with `\\n`, `\\r\\n` or `\\r`."""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            # A CR at the end of a chunk may be the first half of a CRLF: decide when the next chunk comes.
            chunk = chunk[:-1]
            self._held_cr = True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        buffer += chunk
        if not self._started and len(buffer) >= len(_BOM):
            self._started = True
            if buffer.startswith(_BOM):
                del buffer[: len(_BOM)]
        end = buffer.rfind(b"\n")
        if end < 0:
            if len(buffer) > self.max_event_bytes:
                raise SSEError(f"an event-stream line exceeds {self.max_event_bytes} bytes")
            return []
        lines = bytes(buffer[:end]).split(b"\n")
        del buffer[: end + 1]
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """The stream ended: a held CR ends its line; an event without its blank line is dropped (per the spec)."""
        if self._held_cr:
            self._held_cr = False
            return self.feed(b"\n")
        return []

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", b"\n".join(self._data), self.last_event_id)
            self._event = ""
            self._data = []
            self._size = 0
            return event
        if line[0] == 0x3A:  # ":" starts a comment, such as a keep-alive ping
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                raise SSEError(f"an event exceeds {self.max_event_bytes} bytes")
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode(errors="replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode(errors="replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


async def read_events(chunks: AsyncIterable[bytes], parser: SSEParser) -> AsyncGenerator[SSEEvent, None]:
    """The events of a byte stream, through `parser` (which keeps the last event id for a reconnection)."""
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    for event in parser.close():
        yield event
