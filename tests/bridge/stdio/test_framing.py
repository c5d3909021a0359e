"""Line framing: complete lines, a final unterminated line, and oversized lines dropped without losing others."""

from __future__ import annotations

import asyncio

import pytest

from bridge.stdio.framing import read_lines

pytestmark = pytest.mark.anyio


async def collect(data: bytes, max_bytes: int) -> list[bytes]:
    reader = asyncio.StreamReader(limit=max_bytes + 1)
    reader.feed_data(data)
    reader.feed_eof()
    return [line async for line in read_lines(reader, max_bytes)]


async def test_lines_are_split_and_blank_lines_skipped() -> None:
    """Each newline-terminated message is one item; blank lines are not messages."""
    assert await collect(b'{"a":1}\n\n{"b":2}\n', 100) == [b'{"a":1}\n', b'{"b":2}\n']


async def test_a_final_line_without_newline_is_kept() -> None:
    """A server that exits after writing without a newline still gets its last message read."""
    assert await collect(b'{"a":1}\n{"b":2}', 100) == [b'{"a":1}\n', b'{"b":2}']


async def test_an_oversized_line_is_dropped_and_the_next_one_survives(caplog: pytest.LogCaptureFixture) -> None:
    """A line over the limit is dropped whole (and logged with its size); the following message still arrives."""
    big = b'{"x":"' + b"a" * 500 + b'"}\n'
    assert await collect(b'{"a":1}\n' + big + b'{"b":2}\n', 64) == [b'{"a":1}\n', b'{"b":2}\n']
    assert "--max-message-bytes" in caplog.text
