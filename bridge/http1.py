"""The HTTP/1.1 client of the hot paths (aggregator to targets, OpenAPI bridge to its REST API): keep-alive
connections on asyncio, replies parsed by httptools.

Every tool call crosses this client once, so its cost per request bounds the throughput of both. Measured on the
2-core benchmark machine at 16 concurrent requests (see docs/aggregator.md), aiohttp 3.14 spends about 130 µs of CPU
per request and this client about 35 µs: a third of what a whole aggregator hop costs. It leaves out what these
upstreams do not need: proxies, a cookie jar, compression; `Client` follows redirects of GET requests.
httptools (the parser uvicorn runs on, pinned with it) parses replies, chunked bodies included.

A response body is handed over chunk by chunk as it arrives (a reply may be an event stream), bounded: past
`HIGH_WATER` unread bytes the connection stops reading until the reader catches up. A connection goes back to the
pool only when its response was read to the end and the server allows keep-alive; anything else closes it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Final, cast
from urllib.parse import urljoin, urlsplit

import httptools

__all__ = ["Client", "ConnectionPool", "HTTPError", "Response", "header_block", "request_target"]

HIGH_WATER: Final = 256 * 1024
"""Unread response bytes buffered per connection before it stops reading from the socket."""
MAX_IDLE: Final = 64
"""Idle keep-alive connections kept per origin; more are closed when they come back."""
MAX_CONNECTIONS: Final = 100
"""Requests in progress per origin (each holds a connection until its response is released); more wait."""
IDLE_FOR: Final = 4.0
"""Seconds an idle connection is trusted: servers close theirs after about 5 s (uvicorn's default)."""
MAX_REDIRECTS: Final = 10
MAX_ORIGINS: Final = 32
"""Origins a `Client` keeps connections to (a REST API, its OAuth token endpoint, where redirects lead)."""


class HTTPError(ConnectionError):
    """The connection failed or the server's reply was not valid HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the response in progress is read through `Response`."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: dict[str, str] = {}
        self.reason = ""
        self.head: asyncio.Future[None] | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.received = False
        """Whether any byte of the current response arrived (a request on a connection the server closed while
        idle can be retried on a new one only if not)."""
        self.error: HTTPError | None = None
        self.wake: asyncio.Future[None] | None = None
        self.paused = False
        self.idle_since = 0.0

    def start(self) -> asyncio.Future[None]:
        self.headers, self.reason, self.chunks, self.buffered = {}, "", collections.deque(), 0
        self.complete = self.received = self.keep_alive = False
        self.head = asyncio.get_running_loop().create_future()
        return self.head

    @property
    def usable(self) -> bool:
        return self.transport is not None and self.error is None and not self.transport.is_closing()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport does not subclass it

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPError(f"the reply is not valid HTTP/1.1 ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.complete:
            detail = f": {exc}" if exc else ""
            self._fail(HTTPError(f"the server closed the connection before answering{detail}"))

    # httptools callbacks

    def on_status(self, status: bytes) -> None:
        self.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only meaningful inside this callback
        self._wake()

    # Shared by both sides.

    def _fail(self, error: HTTPError) -> None:
        if self.error is None:
            self.error = error
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self.chunks:
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self.wake = asyncio.get_running_loop().create_future()
            try:
                await self.wake
            finally:
                self.wake = None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        return chunk


class Response:
    """The status and headers of a reply, and its body as it arrives; `release()` when done with it."""

    def __init__(self, pool: ConnectionPool, connection: _Connection) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status: int = connection.parser.get_status_code()
        self.reason = connection.reason
        self.headers: Mapping[str, str] = connection.headers
        """Lower-case names."""

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters (`application/json`)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None, "the response was released"
        while (chunk := await connection.next_chunk()) is not None:
            yield chunk

    async def read(self, limit: int) -> bytes:
        """The body, or its first `limit` bytes and a little more when it is longer (the caller decides)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                break
        return b"".join(parts)

    def release(self) -> None:
        """Give the connection back for the next request if the body was read whole, else close it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.give_back(connection)


class ConnectionPool:
    """Keep-alive connections to one origin (`http://host:port` or `https://...`)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc.rpartition("@")[2].encode("idna")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._closed = False

    async def request(self, method: str, target: str, headers: bytes, body: bytes = b"") -> Response:
        """Send a request and wait for the response's status and headers.

        `target` is the path and query; `headers` is the header block, each line ending in CRLF (the Host and
        Content-Length headers are added here). A request sent on a kept-alive connection that the server had
        closed meanwhile is sent once more on a new connection: nothing of it was processed.
        """
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            method.encode(),
            target.encode(),
            self.host_header,
            len(body),
            headers,
        )
        await self._slots.acquire()
        try:
            connection, reused = await self._connection()
            try:
                return await self._send(connection, head + body)
            except HTTPError:
                if not reused or connection.received:
                    raise
            connection, _ = await self._connection(fresh=True)
            return await self._send(connection, head + body)
        except BaseException:
            self._slots.release()
            raise

    async def _send(self, connection: _Connection, data: bytes) -> Response:
        head = connection.start()
        assert connection.transport is not None
        connection.transport.write(data)
        try:
            await head
        except BaseException:
            if connection.transport is not None:
                connection.transport.abort()
            raise
        return Response(self, connection)

    async def _connection(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        if self._closed:
            raise HTTPError("the connection pool is closed")
        now = time.monotonic()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < IDLE_FOR:
                return connection, True
            if connection.transport is not None:
                connection.transport.close()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
            )
        except OSError as exc:
            raise HTTPError(_describe(exc)) from exc
        return connection, False

    def give_back(self, connection: _Connection) -> None:
        """Take a released response's connection back (kept alive or closed) and free its slot."""
        self._slots.release()
        reusable = connection.complete and connection.keep_alive and connection.usable
        if reusable and not self._closed and len(self._idle) < MAX_IDLE:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        elif connection.transport is not None:
            connection.transport.abort() if not connection.complete else connection.transport.close()

    def close(self) -> None:
        self._closed = True
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()


class Client:
    """Requests to any http(s) URL, over one `ConnectionPool` per origin; GET redirects followed."""

    def __init__(self) -> None:
        self._pools: dict[str, ConnectionPool] = {}

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        """Send a request (`headers` without Host and Content-Length) and return the response's head."""
        for _ in range(MAX_REDIRECTS):
            response = await self._pool(url).request(method, request_target(url), header_block(headers), body)
            location = response.headers.get("location")
            if method != "GET" or response.status not in (301, 302, 303, 307, 308) or not location:
                return response
            await response.read(HIGH_WATER)
            response.release()
            target = urljoin(url, location)
            if urlsplit(target)[:2] != urlsplit(url)[:2]:
                # Credentials are for the API's own origin: never carried to another one.
                headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
            url = target
        raise HTTPError(f"more than {MAX_REDIRECTS} redirects, the last to {url}")

    def _pool(self, url: str) -> ConnectionPool:
        scheme, netloc = urlsplit(url)[:2]
        origin = f"{scheme}://{netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            if len(self._pools) >= MAX_ORIGINS:
                self._pools.pop(next(iter(self._pools))).close()
            pool = self._pools[origin] = ConnectionPool(url)
        return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def request_target(url: str) -> str:
    """The request target (path and query) of `url`."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def header_block(headers: Mapping[str, str]) -> bytes:
    """Headers as the lines of a request head; a name or value with a line break is refused rather than sent."""
    if any("\r" in item or "\n" in item for pair in headers.items() for item in pair):
        raise ValueError("a header name or value contains a line break")
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


def _describe(exc: OSError) -> str:
    """Say what failed the way an operator would ("connection refused")."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror or exc})"
    if exc.errno:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__
