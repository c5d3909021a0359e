"""The aggregator's HTTP/1.1 client against real sockets: keep-alive reuse, chunked and streamed bodies, servers
that close idle connections, replies that are not HTTP, back-pressure, and errors named the way operators say them.

The servers here are asyncio servers on loopback writing the exact bytes each case needs (a well-behaved framework
cannot send a malformed reply); the client under test is the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

from bridge.http1 import HIGH_WATER, Client, ConnectionPool, HTTPError
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server running `handler` per connection; yields its URL and a list counting connections."""
    connections: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", connections
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's body (None when the client closed the connection)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return await reader.readexactly(length)


def reply(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(line + b"\r\n" for line in extra) + b"\r\n" + body


async def echo_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (body := await read_request(reader)) is not None:
        writer.write(reply(body))


async def post(pool: ConnectionPool, body: bytes) -> tuple[int, bytes]:
    response = await pool.request("POST", "/mcp", b"Content-Type: application/json\r\n", body)
    try:
        return response.status, await response.read(1 << 20)
    finally:
        response.release()


async def test_connections_are_kept_alive_and_reused() -> None:
    async with serving(echo_server) as (url, connections):
        pool = ConnectionPool(url)
        with anyio.fail_after(10):
            for index in range(20):
                assert await post(pool, b"sequential %d" % index) == (200, b"sequential %d" % index)
            assert len(connections) == 1
            bodies = [b"concurrent %d" % index for index in range(8)]
            results = await asyncio.gather(*(post(pool, body) for body in bodies))
            assert [body for _, body in results] == bodies
            assert len(connections) <= 8
        pool.close()


async def test_chunked_and_streamed_bodies_arrive_piece_by_piece() -> None:
    """A chunked reply is decoded, and its first chunk is readable before the last one is sent."""
    release = asyncio.Event()

    async def streaming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\nfirst \r\n")
        await release.wait()
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")

    async with serving(streaming) as (url, _):
        pool = ConnectionPool(url)
        with anyio.fail_after(10):
            response = await pool.request("POST", "/mcp", b"", b"{}")
            assert response.content_type == "text/event-stream"
            chunks = response.chunks()
            assert await anext(chunks) == b"first "
            release.set()
            assert [chunk async for chunk in chunks] == [b"last"]
            response.release()
        pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced_transparently() -> None:
    """Servers close idle keep-alive connections; a request that finds its connection gone is sent again."""

    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        if body is not None:
            writer.write(reply(body))  # keep-alive is not refused: the close comes after, as an idle timeout would
            await writer.drain()

    async with serving(one_per_connection) as (url, connections):
        pool = ConnectionPool(url)
        with anyio.fail_after(10):
            for index in range(5):
                assert await post(pool, b"call %d" % index) == (200, b"call %d" % index)
        assert len(connections) == 5
        pool.close()


async def test_a_reply_that_is_not_http_fails_the_request_with_a_clear_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with serving(garbage) as (url, _):
        pool = ConnectionPool(url)
        with anyio.fail_after(5), pytest.raises(HTTPError, match=r"not valid HTTP/1\.1"):
            await post(pool, b"{}")
        pool.close()


async def test_a_server_that_hangs_up_mid_reply_fails_the_read() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with serving(cut) as (url, _):
        pool = ConnectionPool(url)
        with anyio.fail_after(5), pytest.raises(HTTPError, match="closed the connection"):
            await post(pool, b"{}")
        pool.close()


async def test_a_large_body_is_read_whole_through_back_pressure() -> None:
    """A body many times the buffer bound arrives complete when read slowly (the socket pauses, then resumes)."""
    big = bytes(range(256)) * (HIGH_WATER // 64)

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(big))
        await writer.drain()

    async with serving(large) as (url, _):
        pool = ConnectionPool(url)
        with anyio.fail_after(10):
            response = await pool.request("POST", "/mcp", b"", b"{}")
            received = bytearray()
            async for chunk in response.chunks():
                received += chunk
                await asyncio.sleep(0)  # a slow reader
            response.release()
        assert bytes(received) == big
        pool.close()


async def test_nothing_listening_is_named_as_connection_refused() -> None:
    pool = ConnectionPool(f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(HTTPError, match=r"^connection refused$"):
        await post(pool, b"{}")


def test_only_http_urls_make_a_pool() -> None:
    with pytest.raises(ValueError, match="not an http"):
        ConnectionPool("ftp://127.0.0.1/mcp")


async def test_the_client_follows_get_redirects_and_keeps_credentials_on_their_origin() -> None:
    """A GET is followed to where a 302 points; a POST is not; Authorization never goes to another origin."""
    seen: list[bytes] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(reply(b"arrived"))
        await writer.drain()

    async with serving(elsewhere) as (other_url, _):

        async def redirecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (await read_request(reader)) is not None:
                writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % other_url.encode())

        async with serving(redirecting) as (url, _):
            client = Client()
            with anyio.fail_after(10):
                response = await client.request("GET", url, {"Authorization": "Bearer secret"})
                assert (response.status, await response.read(100)) == (200, b"arrived")
                response.release()
                posted = await client.request("POST", url, {}, b"{}")
                assert posted.status == 302
                posted.release()
            client.close()
    assert len(seen) == 1 and b"authorization" not in seen[0].lower()
