"""The aggregator's client to one upstream MCP server over HTTP, at the message level.

Messages stay JSON-RPC dicts decoded with orjson: the aggregator only routes them, and the SDK's typed client spends
milliseconds per call building models that would be turned straight back into JSON. `bridge.http1` carries the
HTTP, at a fraction of the CPU per request of the general clients measured here; its errors become `UpstreamError`s
only here.

Two transports behind one API:

- streamable HTTP (2025 era): each request is one POST answered by a JSON body or by an SSE stream that ends with the
  reply; the session id and the negotiated protocol version go on every later request; a GET stream carries what the
  server sends outside calls; HTTP 404 means the session expired, and the request is retried once on a new session.
- legacy HTTP+SSE (2024-11-05): one GET stream carries every server message, replies included; requests are POSTed
  to the endpoint its first event names and matched to their replies by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final, Literal, NoReturn
from urllib.parse import urljoin, urlsplit

import orjson

from aggregator._sse import SSEError, SSEEvent, SSEParser, read_events
from aggregator.exceptions import UpstreamError, UpstreamProtocolError, UpstreamRequestError, UpstreamUnavailable
from bridge.http1 import ConnectionPool, HTTPError, Response, header_block, request_target

__all__ = ["PROTOCOL_VERSION", "Upstream"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]

PROTOCOL_VERSION: Final = "2025-11-25"
"""The revision offered in `initialize`; an upstream may answer an older one, which is then used."""
KNOWN_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
"""Handshake revisions whose messages the aggregator can route unchanged."""

MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
"""Largest SSE event or JSON body taken from an upstream: the bridge's own --max-message-bytes default."""
MAX_ERROR_BYTES: Final = 64 * 1024
"""Most of an unexpected HTTP error body read to explain it; the rest is not worth waiting for."""
ERROR_SNIPPET: Final = 200
"""Characters of an unexpected body quoted in an error message."""
POST_TIMEOUT: Final = 30.0
"""Seconds a notification or response POST may take: servers acknowledge those at once (202)."""
CLOSE_TIMEOUT: Final = 2.0
"""Seconds `close` waits for the session DELETE: shutting down must not hang on a dead upstream."""
STREAM_CONNECT_TIMEOUT: Final = 10.0
"""Seconds to connect a background GET stream, so a black-holed host cannot hold its task forever."""
LISTEN_RETRY_FIRST: Final = 0.5
"""Seconds before reopening a dropped GET stream the first time (doubling after each failure)."""
LISTEN_RETRY_MAX: Final = 30.0
"""Longest wait between attempts to reopen the GET stream."""
MAX_SERVER_REQUESTS: Final = 64
"""Server-to-client requests handled at once; more are refused so a misbehaving upstream cannot pile up work."""
SERVER_REQUEST_TIMEOUT: Final = 600.0
"""Seconds `on_request` may take: elicitation waits on a person; the upstream's own call has timed out by then."""
MAX_BACKGROUND_TASKS: Final = 256
"""Cancellation notices and answers in flight at once; beyond that they are dropped (logged) rather than queued."""

METHOD_NOT_FOUND: Final = -32601
INTERNAL_ERROR: Final = -32603

SESSION_HEADER: Final = "mcp-session-id"
VERSION_HEADER: Final = "mcp-protocol-version"
_ACCEPT_BOTH: Final = "application/json, text/event-stream"
_SSE: Final = "text/event-stream"
Headers = dict[str, str]
"""Request headers by lower-case name."""


class _SessionExpired(Exception):
    """HTTP 404 to a request carrying our session id, or a legacy event stream that is gone: re-initialize."""


class Upstream:
    """One upstream MCP server: `connect`, then any number of concurrent `request`s, then `close`."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        transport: Literal["streamable-http", "sse"],
        client_info: Mapping[str, Any],
        capabilities: Mapping[str, Any],
        on_notification: Callable[[Message], None],
        on_request: Callable[[Message], Awaitable[Message]] | None = None,
        on_session: Callable[[], Coroutine[Any, Any, None]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`on_request` gets each server-to-client request and returns its JSON-RPC response (`result` or `error`;
        `id` is set here); without it such requests are refused. `ping` is always answered here. `on_session` runs
        after each transparent re-initialization, to set the new session up as the old one was.
        """
        if transport not in ("streamable-http", "sse"):
            raise ValueError(f"transport must be 'streamable-http' or 'sse', not {transport!r}")
        self.name = name
        self.url = url
        self.transport = transport
        self._http = ConnectionPool(url)
        self._client_info = dict(client_info)
        self._capabilities = dict(capabilities)
        self._on_notification = on_notification
        self._on_request = on_request
        self._on_session = on_session
        self._user_headers: Headers = {name.lower(): value for name, value in (headers or {}).items()}
        self._where = f"Target {name!r} at {url}"
        self._ids = itertools.count(1)
        self._init_result: Message | None = None
        self._session_id: str | None = None
        self._new_session_id: str | None = None
        self._protocol_version: str | None = None
        self._post_target = request_target(url)
        self._init_headers = self._build_headers(None, None)
        self._headers = self._init_headers
        self._generation = 0
        self._lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._progress: dict[Any, Callable[[Message], None]] = {}
        self._stream_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving = 0
        self._closed = False

    @property
    def initialize_result(self) -> Message | None:
        return self._init_result

    @property
    def capabilities(self) -> Message:
        """The capabilities the server declared in its current session (empty before the handshake)."""
        capabilities = (self._init_result or {}).get("capabilities")
        return capabilities if isinstance(capabilities, dict) else {}

    async def connect(self, timeout: float) -> Message:
        """Run the `initialize` handshake and open the server's event stream; return the InitializeResult."""
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    return await self._handshake()
        except TimeoutError as exc:
            raise self._unavailable(f"no answer to initialize within {timeout:g} s") from exc

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        *,
        timeout: float,
        on_message: Callable[[Message], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Send one request and return its `result`.

        Messages the server sends for it first go to `on_message` (answer its requests with `respond`), else to the
        constructor's callbacks. Progress for the request's `_meta.progressToken` reaches `on_message` whichever
        stream carries it.
        """
        if self._closed:
            raise self._unavailable("the connection was closed")
        request_id = next(self._ids)
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params if type(params) is dict else dict(params)
        token = _progress_token(params)
        if token is not None and on_message is not None:
            self._progress[token] = on_message
        try:
            async with asyncio.timeout(timeout):
                reply = await self._request(message, on_message, headers)
        except TimeoutError as exc:
            self._cancel_upstream(request_id, f"no reply within {timeout:g} s")
            raise self._unavailable(f"no reply to {method} within {timeout:g} s") from exc
        except asyncio.CancelledError:
            self._cancel_upstream(request_id, "the client cancelled the request")
            raise
        finally:
            if token is not None and self._progress.get(token) is on_message:
                del self._progress[token]
        return self._result(reply)

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        """POST a notification; an expired session is re-initialized once first."""
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params if type(params) is dict else dict(params)
        generation = self._generation
        try:
            async with asyncio.timeout(POST_TIMEOUT):
                try:
                    await self._post_message(message)
                    return
                except _SessionExpired:
                    await self._reinitialize(generation)
                try:
                    await self._post_message(message)
                except _SessionExpired as exc:
                    raise self._unavailable("the session expired again right after re-initializing") from exc
        except TimeoutError as exc:
            raise self._unavailable(f"{method} was not accepted within {POST_TIMEOUT:g} s") from exc

    async def respond(self, message: Message) -> None:
        """POST the response to a server-to-client request."""
        try:
            async with asyncio.timeout(POST_TIMEOUT):
                await self._post_message(message)
        except TimeoutError as exc:
            raise self._unavailable(f"the response was not accepted within {POST_TIMEOUT:g} s") from exc
        except _SessionExpired as exc:
            raise self._unavailable("the session expired before the response could be delivered") from exc

    async def close(self) -> None:
        """Stop the background tasks and end the session (errors ignored); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._stream_task, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _fail(self._pending, self._unavailable("the connection was closed"))
        if self.transport == "streamable-http" and self._session_id is not None:
            with contextlib.suppress(UpstreamError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    (await self._send("DELETE", request_target(self.url), self._headers)).release()
        self._http.close()

    # The handshake and re-initialization.

    async def _handshake(self) -> Message:
        """Open a session (called under the lock); the old stream stops and the generation moves on on success."""
        if self._closed:
            raise self._unavailable("the connection was closed")
        await self._stop_stream()
        try:
            if self.transport == "sse":
                await self._open_legacy_stream()
            params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": self._capabilities}
            params["clientInfo"] = self._client_info
            message = {"jsonrpc": "2.0", "id": next(self._ids), "method": "initialize", "params": params}
            result = self._result(await self._call(message, None, None, initialize=True))
            version = result.get("protocolVersion")
            if not isinstance(version, str) or version not in KNOWN_VERSIONS:
                raise self._protocol_error(f"the server answered protocol version {version!r}, not one of ours")
            self._session_id = self._new_session_id
            self._protocol_version = version
            self._headers = self._build_headers(self._session_id, version)
            await self._post_message({"jsonrpc": "2.0", "method": "notifications/initialized"})
        except BaseException as exc:
            if self._stream_task is not None:  # a legacy stream opened for this handshake
                self._stream_task.cancel()
                self._stream_task = None
            if isinstance(exc, _SessionExpired):
                raise self._unavailable("the new session vanished during the handshake") from exc
            raise
        self._init_result = result
        self._generation += 1
        if self.transport == "streamable-http":
            self._stream_task = asyncio.create_task(self._listen(self._generation), name=f"upstream-{self.name}")
        return result

    async def _reinitialize(self, generation: int) -> None:
        """Start a new session unless another caller already did since `generation`."""
        async with self._lock:
            if generation != self._generation:
                return
            logger.info("%s: the session expired; re-initializing.", self._where)
            try:
                await self._handshake()
            except UpstreamUnavailable:
                raise
            except UpstreamError as exc:
                raise self._unavailable(f"the session expired and re-initializing failed ({exc})") from exc
            if self._on_session is not None:
                self._spawn(self._on_session())

    async def _stop_stream(self) -> None:
        task, self._stream_task = self._stream_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Requests.

    async def _request(self, message: Message, on_message: Callable[[Message], None] | None, headers: Any) -> Message:
        generation = self._generation
        try:
            return await self._call(message, on_message, headers)
        except _SessionExpired:
            await self._reinitialize(generation)
        try:
            return await self._call(message, on_message, headers)
        except _SessionExpired as exc:
            raise self._unavailable("the session expired again right after re-initializing") from exc

    async def _call(
        self,
        message: Message,
        on_message: Callable[[Message], None] | None,
        extra: Mapping[str, str] | None,
        *,
        initialize: bool = False,
    ) -> Message:
        """Send one request and return its reply message, by the transport's rules."""
        headers = self._init_headers if initialize else self._headers
        if extra:
            # Ours win: a forwarded header must not replace the session or protocol headers.
            headers = {**{name.lower(): value for name, value in extra.items()}, **headers}
        if self.transport == "sse":
            return await self._legacy_call(message, headers)
        response = await self._send("POST", self._post_target, headers, orjson.dumps(message))
        try:
            if response.status != 200:
                await self._fail_status(response, headers)
            if initialize:
                self._new_session_id = response.headers.get(SESSION_HEADER)
            kind = response.content_type
            if kind == "application/json":
                reply = self._decode(await self._read_body(response))
                if reply.get("id") != message["id"] or "method" in reply:
                    raise self._protocol_error(f"the reply to {message['method']} does not carry its id")
                return reply
            if kind == _SSE:
                return await self._stream_reply(response, message["id"], on_message)
            raise self._protocol_error(f"the reply to {message['method']} has Content-Type {kind!r}")
        finally:
            response.release()

    async def _send(self, method: str, target: str, headers: Headers, body: bytes = b"") -> Response:
        try:
            return await self._http.request(method, target, header_block(headers), body)
        except HTTPError as exc:
            raise self._unavailable(str(exc)) from exc
        except ValueError as exc:  # a forwarded header that cannot be sent as it is
            raise self._protocol_error(f"cannot send the request: {exc}") from exc

    async def _stream_reply(
        self, response: Response, request_id: int, on_message: Callable[[Message], None] | None
    ) -> Message:
        """Read a POST's event stream: dispatch what comes first, return the reply."""
        try:
            async with contextlib.aclosing(read_events(response.chunks(), SSEParser(MAX_MESSAGE_BYTES))) as events:
                async for event in events:
                    if event.event != "message" or not event.data:
                        continue  # an event with no data primes resumption (an id only)
                    message = self._decode(event.data)
                    if message.get("id") == request_id and "method" not in message:
                        return message
                    self._dispatch(message, on_message)
        except SSEError as exc:
            raise self._protocol_error(str(exc)) from exc
        except HTTPError as exc:
            raise self._unavailable(str(exc)) from exc
        raise self._unavailable("the response stream ended before the reply")

    async def _post_message(self, message: Message, headers: Headers | None = None) -> None:
        """POST a message answered by acceptance only (any 2xx): notifications, responses, legacy requests."""
        headers = self._headers if headers is None else headers
        response = await self._send("POST", self._post_target, headers, orjson.dumps(message))
        try:
            if response.status // 100 != 2:
                await self._fail_status(response, headers)
            await self._read_body(response)  # to the end, so the connection can be reused
        finally:
            response.release()

    def _cancel_upstream(self, request_id: int, reason: str) -> None:
        """Tell the upstream to stop working on a request nobody waits for any more (in the background)."""

        async def cancel() -> None:
            with contextlib.suppress(UpstreamError, _SessionExpired, TimeoutError):
                async with asyncio.timeout(POST_TIMEOUT):
                    await self._post_message(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/cancelled",
                            "params": {"requestId": request_id, "reason": reason},
                        }
                    )

        if not self._closed:
            self._spawn(cancel())

    # The legacy HTTP+SSE transport.

    async def _open_legacy_stream(self) -> None:
        """GET the SSE URL, read its `endpoint` event, and leave a task reading every later message."""
        headers = {**self._user_headers, "accept": _SSE}
        response = await self._open_stream(headers)
        events = read_events(response.chunks(), SSEParser(MAX_MESSAGE_BYTES))
        try:
            if response.status != 200:
                await self._fail_status(response, None)
            if response.content_type != _SSE:
                raise self._protocol_error(f"the SSE URL answered Content-Type {response.content_type!r}")
            async for event in events:
                if event.event == "endpoint":
                    post_url = urljoin(self.url, event.data.decode(errors="replace").strip())
                    break
            else:
                raise self._unavailable("the event stream closed before naming its endpoint")
            if urlsplit(post_url)[:2] != urlsplit(self.url)[:2]:
                raise self._protocol_error(f"the endpoint {post_url} is not on the SSE URL's origin")
        except BaseException as exc:
            await events.aclose()
            response.release()
            if isinstance(exc, HTTPError):
                raise self._unavailable(str(exc)) from exc
            if isinstance(exc, SSEError):
                raise self._protocol_error(str(exc)) from exc
            raise
        self._post_target = request_target(post_url)
        self._pending = {}
        self._stream_task = asyncio.create_task(
            self._read_legacy(response, events, self._pending), name=f"upstream-{self.name}"
        )

    async def _read_legacy(
        self,
        response: Response,
        events: AsyncGenerator[SSEEvent, None],
        pending: dict[int, asyncio.Future[Message]],
    ) -> None:
        """Dispatch the rest of the legacy stream; when it ends, fail the requests still waiting on it."""
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    self._stream_event(event, pending)
        except (HTTPError, SSEError) as exc:
            logger.info("%s: the event stream failed: %s", self._where, exc)
        finally:
            response.release()
            _fail(pending, self._unavailable("the event stream closed; the session is lost"))

    async def _legacy_call(self, message: Message, headers: Headers) -> Message:
        task = self._stream_task
        if task is None or task.done():
            raise _SessionExpired
        pending = self._pending
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        pending[message["id"]] = future
        try:
            await self._post_message(message, headers)
            return await future
        finally:
            pending.pop(message["id"], None)

    # The server's own stream (streamable HTTP).

    async def _listen(self, generation: int) -> None:
        """Keep the session's GET stream open and dispatch its messages; stop at 405 (none offered) or a 4xx."""
        delay = LISTEN_RETRY_FIRST
        last_event_id: str | None = None
        while generation == self._generation:
            headers = {**self._headers, "accept": _SSE}
            del headers["content-type"]
            if last_event_id:
                headers["last-event-id"] = last_event_id  # resume where the dropped stream stopped, if it can
            parser = SSEParser(MAX_MESSAGE_BYTES)
            try:
                response = await self._open_stream(headers)
                try:
                    if response.status // 100 == 4 or (response.status == 200 and response.content_type != _SSE):
                        if response.status != 405:
                            logger.info("%s: no GET stream (HTTP %d).", self._where, response.status)
                        return
                    if response.status == 200:
                        async with contextlib.aclosing(read_events(response.chunks(), parser)) as events:
                            async for event in events:
                                delay = LISTEN_RETRY_FIRST
                                self._stream_event(event, None)
                finally:
                    response.release()
            except (UpstreamUnavailable, HTTPError, SSEError) as exc:
                logger.info("%s: the GET stream dropped: %s", self._where, exc)
            last_event_id = parser.last_event_id or last_event_id
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    # Dispatching what servers send.

    def _stream_event(self, event: SSEEvent, pending: dict[int, asyncio.Future[Message]] | None) -> None:
        if event.event != "message" or not event.data:
            return
        try:
            message = self._decode(event.data)
        except UpstreamProtocolError as exc:
            logger.warning("%s", exc)
            return
        if "method" in message or pending is None:
            self._dispatch(message, None)
            return
        future = pending.get(message["id"]) if "id" in message else None
        if future is not None and not future.done():
            future.set_result(message)

    def _dispatch(self, message: Message, on_message: Callable[[Message], None] | None) -> None:
        """Route a server message: a request to `on_message` or `on_request`, a notification to its callback."""
        method = message.get("method")
        if method is None:
            return  # a reply nobody waits for (its request timed out or was cancelled)
        if "id" in message:
            if method == "ping":
                self._spawn(self._answer_quietly({"jsonrpc": "2.0", "id": message["id"], "result": {}}))
            elif on_message is not None:
                _deliver(on_message, message)
            else:
                self._serve(message)
            return
        if on_message is None and method == "notifications/progress":
            on_message = self._progress.get(_progress_token(message.get("params"), meta=False))
        _deliver(on_message or self._on_notification, message)

    def _serve(self, message: Message) -> None:
        if self._on_request is None:
            self._spawn(self._answer_quietly(_error(message["id"], METHOD_NOT_FOUND, "Method not found")))
        elif self._serving >= MAX_SERVER_REQUESTS:
            text = f"The aggregator already handles {MAX_SERVER_REQUESTS} requests from this server; retry later."
            self._spawn(self._answer_quietly(_error(message["id"], INTERNAL_ERROR, text)))
        else:
            self._spawn(self._answer(message, self._on_request))

    async def _answer(self, message: Message, handler: Callable[[Message], Awaitable[Message]]) -> None:
        self._serving += 1
        try:
            try:
                async with asyncio.timeout(SERVER_REQUEST_TIMEOUT):
                    answer = await handler(message)
                reply: Message = {"jsonrpc": "2.0", "id": message["id"]}
                if "error" in answer:
                    reply["error"] = answer["error"]
                else:
                    reply["result"] = answer.get("result", {})
            except Exception as exc:
                logger.warning("%s: answering %s failed: %r", self._where, message["method"], exc)
                reply = _error(message["id"], INTERNAL_ERROR, f"The aggregator could not answer {message['method']}.")
            await self._answer_quietly(reply)
        finally:
            self._serving -= 1

    async def _answer_quietly(self, reply: Message) -> None:
        try:
            await self.respond(reply)
        except UpstreamError as exc:
            logger.info("%s", exc)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        if self._closed or len(self._tasks) >= MAX_BACKGROUND_TASKS:
            if not self._closed:
                logger.warning("%s: %d background tasks already; dropping one.", self._where, len(self._tasks))
            coroutine.close()
            return
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Checking what servers answer.

    def _decode(self, data: bytes) -> Message:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise self._protocol_error(f"a message is not valid JSON ({exc})") from exc
        if type(message) is not dict or message.get("jsonrpc") != "2.0":
            raise self._protocol_error(f"a message is not a JSON-RPC 2.0 object: {_snippet(data)}")
        return message

    def _result(self, reply: Message) -> Message:
        error = reply.get("error")
        if error is not None:
            if type(error) is dict and type(error.get("code")) is int and isinstance(error.get("message"), str):
                raise UpstreamRequestError(self.name, error["code"], error["message"], error.get("data"))
            raise self._protocol_error(f"a malformed JSON-RPC error: {_snippet(orjson.dumps(error))}")
        result = reply.get("result")
        if type(result) is not dict:
            raise self._protocol_error(f"a reply without a result object: {_snippet(orjson.dumps(reply))}")
        return result

    async def _open_stream(self, headers: Headers) -> Response:
        """GET the URL for an event stream, the connection and the response's head within the connect timeout."""
        try:
            async with asyncio.timeout(STREAM_CONNECT_TIMEOUT):
                return await self._send("GET", request_target(self.url), headers)
        except TimeoutError as exc:
            raise self._unavailable(f"no answer to the stream request within {STREAM_CONNECT_TIMEOUT:g} s") from exc

    async def _read_body(self, response: Response) -> bytes:
        try:
            body = await response.read(MAX_MESSAGE_BYTES)
        except HTTPError as exc:
            raise self._unavailable(str(exc)) from exc
        if len(body) > MAX_MESSAGE_BYTES:
            raise self._protocol_error(f"a reply exceeds {MAX_MESSAGE_BYTES} bytes")
        return body

    async def _fail_status(self, response: Response, headers: Headers | None) -> NoReturn:
        """Raise for an unexpected HTTP status: 404 on our session is expiry, 5xx unavailability, else the body.

        A session is ours when the request carried its id (streamable HTTP) or went to a legacy endpoint.
        """
        status = response.status
        if status == 404 and headers is not None and (self.transport == "sse" or SESSION_HEADER in headers):
            raise _SessionExpired
        try:
            body = await response.read(MAX_ERROR_BYTES)
        except HTTPError:
            body = b""
        error: Any = None
        with contextlib.suppress(orjson.JSONDecodeError):
            error = orjson.loads(body).get("error") if body.startswith(b"{") else None
        valid = type(error) is dict and type(error.get("code")) is int and isinstance(error.get("message"), str)
        if status >= 500:
            raise self._unavailable(f"HTTP {status}: {error['message'] if valid else _snippet(body)}")
        if valid and status // 100 == 4:
            raise UpstreamRequestError(self.name, error["code"], error["message"], error.get("data"))
        raise self._protocol_error(f"HTTP {status}: {_snippet(body)}")

    def _build_headers(self, session_id: str | None, version: str | None) -> Headers:
        headers = {**self._user_headers, "accept": _ACCEPT_BOTH, "content-type": "application/json"}
        if session_id is not None:
            headers[SESSION_HEADER] = session_id
        if version is not None:
            headers[VERSION_HEADER] = version
        return headers

    def _unavailable(self, detail: str) -> UpstreamUnavailable:
        return UpstreamUnavailable(self.name, f"{self._where}: {detail}")

    def _protocol_error(self, detail: str) -> UpstreamProtocolError:
        return UpstreamProtocolError(self.name, f"{self._where}: {detail}")


def _progress_token(params: Any, *, meta: bool = True) -> Any:
    """The progress token of a request's params (`_meta.progressToken`) or of a progress notification's params."""
    if type(params) is not dict:
        return None
    if meta:
        params = params.get("_meta")
        if type(params) is not dict:
            return None
    token = params.get("progressToken")
    return token if isinstance(token, str | int) else None


def _deliver(callback: Callable[[Message], None], message: Message) -> None:
    try:
        callback(message)
    except Exception:
        logger.exception("A callback failed on %s.", message.get("method"))


def _fail(pending: dict[int, asyncio.Future[Message]], exc: BaseException) -> None:
    for future in pending.values():
        if not future.done():
            future.set_exception(exc)
    pending.clear()


def _error(request_id: Any, code: int, message: str) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _snippet(data: bytes) -> str:
    text = data[: ERROR_SNIPPET * 4].decode(errors="replace")
    return text if len(text) <= ERROR_SNIPPET else text[:ERROR_SNIPPET] + "..."
