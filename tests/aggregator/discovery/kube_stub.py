"""A stub Kubernetes API server that the real lightkube client lists and watches: Services, EndpointSlices, Namespaces.

No cluster can run on the test machines, and a fake client would only test our own reading of lightkube. So this is
a real HTTP/1.1 server on loopback, in a thread with its own event loop (tests in any loop, or none, can drive it),
and the discovery tests use the real `lightkube.AsyncClient` against it. It keeps what a watcher depends on:

- One global resourceVersion counter, like etcd's revision: every create, update and delete takes the next value;
  an update that changes nothing takes none and sends no event, as kube-apiserver skips no-op writes.
- Lists: items without `kind`/`apiVersion` (typed lists omit them), in etcd key order (namespace, then name);
  `limit`/`continue` pages read one snapshot, at the first page's version, and 410 once that version is compacted.
  Lists always serve the latest state: `resourceVersion` and `resourceVersionMatch` are accepted and not modelled.
- Watches: without `resourceVersion` (or "0"), a synthetic ADDED for every matching object, then live changes; from
  a version, every change after it, then live ones; from a compacted version, one ERROR event (410 Expired) and the
  end of the stream, as the watch cache answers. Selector filtering follows the watch cache: an object that stops
  matching is a DELETED (its previous state, the new version), one that starts matching an ADDED. Bookmarks, when
  asked for, carry the kind's Go zero value: `addressType: ""` on an EndpointSlice matters, as lightkube's model
  requires the field and would fail to decode a bare `metadata`.
- Errors are `Status` objects as `Content-Type: application/json` exactly: lightkube only turns a response into an
  `ApiError` on that header.

Namespaces in lightkube 1.0.1 (`GenericClient.prepare_request`): `namespace=None` is NOT all namespaces but the
client's default one (the kubeconfig context's, else "default"): `/api/v1/namespaces/default/services`. All namespaces
is `namespace=lightkube.ALL_NS`, the string "*": `/api/v1/services`. Cluster-scoped kinds (Namespace) ignore it.

Not modelled: writes over HTTP (tests change the store with `apply`/`delete`), auth, TLS, discovery and `/version`
(lightkube calls none of them for typed resources). asyncio's own server rather than uvicorn: a test must be able to
cut a watch mid-stream (uvicorn would log an ASGI exception) and to stop the server while watches are open (uvicorn
waits for them to end).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import math
import re
import threading
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

Obj = dict[str, Any]
T = TypeVar("T")

HOST = "127.0.0.1"
CALL_TIMEOUT = 10.0
"""Seconds a test thread waits for the server's loop to start, stop or cut connections: far more than they take."""


@dataclass(frozen=True)
class _Kind:
    kind: str
    api_version: str
    plural: str
    namespaced: bool
    zero: Obj
    """The fields Go serializes for an empty object of this kind, besides kind, apiVersion and metadata."""

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def bookmark(self, rv: int) -> Obj:
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        return {
            "type": "BOOKMARK",
            "object": {"kind": self.kind, "apiVersion": self.api_version, "metadata": meta, **copy.deepcopy(self.zero)},
        }


KINDS = {
    kind.kind: kind
    for kind in (
        _Kind("Service", "v1", "services", True, {"spec": {}, "status": {"loadBalancer": {}}}),
        _Kind("Namespace", "v1", "namespaces", False, {"spec": {}, "status": {}}),
        _Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True, {"addressType": "", "endpoints": None}),
    )
}


class Request(NamedTuple):
    """One request as the server saw it: the path unquoted, the query as a dict."""

    method: str
    path: str
    query: dict[str, str]


_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter."
)
_FAILURE = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}


class _StatusError(Exception):
    """A failure kube-apiserver answers with a `Status` object and its HTTP code."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {**_FAILURE, "message": self.message, "reason": self.reason, "code": self.code}


def _bad_request(message: str) -> _StatusError:
    return _StatusError(400, "BadRequest", message)


def _route(path: str) -> tuple[_Kind, str | None, str | None] | None:
    """The kind, namespace and object name a path names, for the paths kube-apiserver serves; None for others."""
    for kind in KINDS.values():
        rest = path.removeprefix(kind.prefix + "/")
        parts = rest.split("/")
        namespace = None
        if kind.namespaced and len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        name = parts[1] if len(parts) == 2 else None
        if rest != path and parts[0] == kind.plural and len(parts) <= 2 and all(parts):
            return None if kind.namespaced and name and not namespace else (kind, namespace, name)
    return None


_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}")
_LABEL_VALUE = re.compile(rf"({_NAME})?")
_REQUIREMENT = re.compile(
    r"\s*(?:!\s*(?P<absent>[^\s,=!()]+)|(?P<key>[^\s,=!()]+)"
    r"(?:\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,=!()]*)|\s+(?P<set_op>in|notin)\s*\((?P<values>[^()]*)\))?)\s*"
)
_FIELD_TERM = re.compile(r"\s*(?P<field>[^\s=!]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,]*)\s*")


@dataclass(frozen=True)
class _Requirement:
    """One term of a label selector; `=`/`==` are `in` of one value and `!=` is `notin`, as in apimachinery."""

    key: str
    op: str  # "exists", "!", "in" or "notin"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op in ("exists", "!"):
            return (self.key in labels) == (self.op == "exists")
        return (labels.get(self.key) in self.values) == (self.op == "in")


def _parse_labels(text: str) -> tuple[_Requirement, ...]:
    """Label selector syntax as kube-apiserver parses it, with its 400 for what it rejects."""
    requirements = []
    for term in re.split(r",(?![^()]*\))", text) if text.strip() else []:
        match = _REQUIREMENT.fullmatch(term)
        if match is None or (match["set_op"] and not match["values"].strip()):
            raise _bad_request(f"unable to parse requirement: {term!r}")
        values = [v.strip() for v in match["values"].split(",")] if match["set_op"] else [match["value"] or ""]
        key = match["absent"] or match["key"]
        if not _LABEL_KEY.fullmatch(key) or not all(_LABEL_VALUE.fullmatch(v) for v in values):
            raise _bad_request(f"unable to parse requirement: invalid label key or value in {term!r}")
        op = match["set_op"] or {"=": "in", "==": "in", "!=": "notin", None: "exists"}[match["op"]]
        requirements.append(_Requirement(key, "!" if match["absent"] else op, frozenset(values)))
    return tuple(requirements)


@dataclass(frozen=True)
class _Filter:
    """What a list or watch request selects: kind, namespace, label and field selectors."""

    kind: _Kind
    namespace: str | None
    labels: tuple[_Requirement, ...]
    fields: tuple[tuple[str, bool, str], ...]  # (field, equal, value): kube's field selectors only have = and !=

    @classmethod
    def parse(cls, kind: _Kind, namespace: str | None, name: str | None, query: dict[str, str]) -> _Filter:
        supported = ("metadata.name", "metadata.namespace") if kind.namespaced else ("metadata.name",)
        fields = [("metadata.name", True, name)] if name else []
        text = query.get("fieldSelector", "")
        for term in text.split(",") if text.strip() else []:
            if (match := _FIELD_TERM.fullmatch(term)) is None:
                raise _bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
            if match["field"] not in supported:
                raise _bad_request(f"field label not supported: {match['field']}")
            fields.append((match["field"], match["op"] != "!=", match["value"]))
        return cls(kind, namespace, _parse_labels(query.get("labelSelector", "")), tuple(fields))

    def matches(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        values = {"metadata.name": meta["name"], "metadata.namespace": meta.get("namespace", "")}
        return (
            obj["kind"] == self.kind.kind
            and self.namespace in (None, meta.get("namespace"))
            and all(r.matches(meta.get("labels") or {}) for r in self.labels)
            and all((values[f] == value) == equal for f, equal, value in self.fields)
        )


class _Change(NamedTuple):
    rv: int
    key: str
    old: Obj | None
    new: Obj | None


def _event(flt: _Filter, change: _Change) -> Obj | None:
    """The event a watcher with this filter gets for a change, as the watch cache's `convertToWatchEvent` decides."""
    was = change.old is not None and flt.matches(change.old)
    if change.new is not None and flt.matches(change.new):
        return {"type": "MODIFIED" if was else "ADDED", "object": change.new}
    if was and change.old is not None:
        gone = {**change.old, "metadata": {**change.old["metadata"], "resourceVersion": str(change.rv)}}
        return {"type": "DELETED", "object": gone}
    return None


@dataclass(eq=False)
class _Watch:
    filter: _Filter
    writer: asyncio.StreamWriter
    loop: asyncio.AbstractEventLoop
    pending: list[Obj] = field(default_factory=list)  # guarded by the server's lock, so a bookmark never overtakes
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _object_key(kind: _Kind, namespace: str | None, name: str) -> str:
    """The object's etcd key below the registry prefix: lists come in this order, continue tokens point into it."""
    return f"{kind.plural}/{namespace}/{name}" if kind.namespaced else f"{kind.plural}/{name}"


def _int_param(query: dict[str, str], name: str) -> int:
    try:
        return int(query.get(name) or 0)
    except ValueError:
        raise _bad_request(f"invalid {name}: {query[name]!r}") from None


async def _until_eof(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        await reader.read(1)


def _chunk(event: Obj) -> bytes:
    data = json.dumps(event).encode() + b"\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(code: int, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {code} {HTTPStatus(code).phrase}", "Content-Type: application/json", *headers, "", ""]
    return "\r\n".join(lines).encode()


class StubApiServer:
    """kube-apiserver's list and watch for Services, EndpointSlices and Namespaces; `with StubApiServer() as api:`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        """Every request received, in order: to assert that a client relisted, resumed, or paged."""
        self._lock = threading.Lock()  # guards the store, the history and the set of watches: tests write from afar
        self._objects: dict[str, Obj] = {}
        self._rv = 0
        self._history: list[_Change] = []
        self._compacted = 0
        self._watches: set[_Watch] = set()
        self._bookmark_interval = 1.0
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    # Lifecycle, from the test's thread.

    def __enter__(self) -> StubApiServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kube-stub-apiserver", daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self._loop.close()

    @property
    def url(self) -> str:
        assert self._port, "the server has not started"
        return f"http://{HOST}:{self._port}"

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server; its context names a user (with a token), as lightkube asserts there is one."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "stub", "user": {"token": "stub-token"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub", "namespace": "default"}}],
            "current-context": "stub",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The API server is down (etcd is not): open connections cut, new ones refused; back on the same port after."""
        self._call(self._close())
        try:
            yield
        finally:
            self._call(self._listen())

    def restart(self) -> None:
        """An API server restart: every connection is cut; objects and the resourceVersion counter survive."""
        with self.down():
            pass

    # Faults.

    def compact(self) -> None:
        """Forget the history up to now, as etcd compaction or watch cache expiry: older versions get 410 Gone."""
        with self._lock:
            self._compacted = self._rv
            self._history.clear()

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream, without the final chunk, as a lost TCP connection does."""
        with self._lock:
            watches, self._watches = self._watches, set()

        async def cut() -> None:
            for watch in watches:
                watch.writer.transport.abort()

        self._call(cut())

    def set_bookmark_interval(self, seconds: float) -> None:
        """How often watches that allow bookmarks get one (kube-apiserver: about a minute); open ones after the next."""
        self._bookmark_interval = seconds

    # The store.

    def apply(self, obj: Obj) -> Obj:
        """Create or replace an object; returns it as stored, with resourceVersion, uid and creationTimestamp set."""
        kind = KINDS.get(obj.get("kind", ""))
        if kind is None or obj.get("apiVersion") != kind.api_version:
            raise ValueError(f"unsupported kind {obj.get('apiVersion')}/{obj.get('kind')}: one of {sorted(KINDS)}")
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        if kind.namespaced != bool(meta.get("namespace")) or not meta.get("name"):
            raise ValueError(f"{kind.kind} needs metadata.name, and metadata.namespace if and only if namespaced")
        if kind.kind == "Namespace":  # kube-apiserver labels every namespace with its name
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        key = _object_key(kind, meta.get("namespace"), meta["name"])
        with self._lock:
            old = self._objects.get(key)
            if old is not None:
                meta.update({k: old["metadata"][k] for k in ("uid", "creationTimestamp", "resourceVersion")})
                if new == old:
                    return copy.deepcopy(old)
            else:
                meta["uid"] = str(uuid.uuid4())
                meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[key] = new
            self._record(_Change(self._rv, key, old, new))
        return copy.deepcopy(new)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete an object: watchers get DELETED with its last state at a new resourceVersion. KeyError if absent."""
        key = _object_key(KINDS[kind], namespace, name)
        with self._lock:
            old = self._objects.pop(key)
            self._rv += 1
            self._record(_Change(self._rv, key, old, None))

    def _record(self, change: _Change) -> None:
        """Keep a change for watches that resume and lists that page, and hand it to live watches (lock held)."""
        self._history.append(change)
        for watch in self._watches:
            if (event := _event(watch.filter, change)) is not None:
                watch.pending.append(event)
                watch.loop.call_soon_threadsafe(watch.wake.set)

    def _state_at(self, rv: int) -> dict[str, Obj]:
        """The store as it was at `rv`, a version not compacted: today's, with the later changes undone (lock held)."""
        objects = dict(self._objects)
        for change in reversed(self._history):
            if change.rv <= rv:
                break
            if change.old is None:
                del objects[change.key]
            else:
                objects[change.key] = change.old
        return objects

    # The server's loop.

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "use the server as a context manager"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, self._port, reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        """Stop listening, cut every connection, and wait until each one's task has ended."""
        assert self._server is not None
        self._server.close()
        self._server = None
        for writer in self._connections.values():
            writer.transport.abort()
        if tasks := asyncio.all_tasks() - {asyncio.current_task()}:  # connections, and any still being accepted
            await asyncio.wait(tasks)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Registered before its task first runs, so `_close` cuts it even if it came in just before."""
        if self._server is None:
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(self._connections.pop)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: requests one after the other, kept alive between them as Go's net/http does."""
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, or a test cut the connection
        finally:
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = [
            value for name, _, value in (line.partition(":") for line in lines) if name.lower() == "content-length"
        ]
        await reader.readexactly(int(length[0]) if length else 0)
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.requests.append(Request(method, unquote(url.path), query))
        try:
            route = _route(unquote(url.path))
            if route is None:
                raise _StatusError(404, "NotFound", "the server could not find the requested resource")
            if method != "GET":
                raise _StatusError(405, "MethodNotAllowed", "the server does not allow this method on the resource")
            kind, namespace, name = route
            flt = _Filter.parse(kind, namespace, name, query)
            if query.get("watch", "").lower() in ("1", "t", "true"):
                return await self._watch(flt, query, reader, writer)
            body = self._get(kind, namespace, name) if name else self._list(flt, query)
            code = 200
        except _StatusError as error:
            body, code = error.status(), error.code
        data = json.dumps(body).encode()
        writer.write(_head(code, f"Content-Length: {len(data)}") + data)
        await writer.drain()
        return True

    def _get(self, kind: _Kind, namespace: str | None, name: str) -> Obj:
        with self._lock:
            obj = self._objects.get(_object_key(kind, namespace, name))
        if obj is None:
            raise _StatusError(404, "NotFound", f'{kind.plural} "{name}" not found')
        return obj

    def _list(self, flt: _Filter, query: dict[str, str]) -> Obj:
        limit = _int_param(query, "limit")
        with self._lock:
            if token := query.get("continue"):
                try:
                    cont = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                    rv, start = int(cont["rv"]), str(cont["start"])
                except (binascii.Error, ValueError, KeyError, TypeError):
                    raise _bad_request(f"invalid continue token: {token!r}") from None
                if rv < self._compacted:
                    raise _StatusError(410, "Expired", _CONTINUE_EXPIRED)
                objects = self._state_at(rv)
            else:
                rv, start, objects = self._rv, "", self._objects
            matching = sorted((key, obj) for key, obj in objects.items() if key >= start and flt.matches(obj))
        page = matching[:limit] if limit > 0 else matching
        meta: Obj = {"resourceVersion": str(rv)}
        if len(page) < len(matching):
            cont = {"v": "meta.k8s.io/v1", "rv": rv, "start": page[-1][0] + "\x00"}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(cont).encode()).decode().rstrip("=")
            if not flt.labels and not flt.fields:  # kube-apiserver counts only when it did not filter
                meta["remainingItemCount"] = len(matching) - len(page)
        items = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} for _, obj in page]
        return {"kind": f"{flt.kind.kind}List", "apiVersion": flt.kind.api_version, "metadata": meta, "items": items}

    async def _watch(
        self, flt: _Filter, query: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Stream events until the client leaves (False) or `timeoutSeconds` ends it cleanly (True: keep alive)."""
        loop = asyncio.get_running_loop()
        watch = _Watch(flt, writer, loop)
        timeout = _int_param(query, "timeoutSeconds")
        with self._lock:
            since = _int_param(query, "resourceVersion")  # unset or "0": the current state first, as synthetic ADDED
            if expired := 0 < since < self._compacted:
                status = _StatusError(410, "Expired", f"too old resource version: {since} ({self._compacted})")
                watch.pending = [{"type": "ERROR", "object": status.status()}]
            elif since:
                watch.pending = [e for c in self._history if c.rv > since and (e := _event(flt, c)) is not None]
            else:
                objects = sorted(self._objects.items())
                watch.pending = [{"type": "ADDED", "object": obj} for _, obj in objects if flt.matches(obj)]
            if not expired:
                self._watches.add(watch)
        writer.write(_head(200, "Transfer-Encoding: chunked"))
        if expired:  # the watch cache's answer: the error as the only event, and the end of a successful response
            writer.write(_chunk(watch.pending[0]) + b"0\r\n\r\n")
            await writer.drain()
            return True
        deadline = loop.time() + (timeout or math.inf)
        bookmarks = query.get("allowWatchBookmarks", "").lower() in ("1", "t", "true")
        next_bookmark = loop.time() + self._bookmark_interval if bookmarks else math.inf
        eof = loop.create_task(_until_eof(reader))  # a client leaves a watch by closing the connection
        eof.add_done_callback(lambda _: watch.wake.set())
        watch.wake.set()
        try:
            while not eof.done():
                wake_at = min(deadline, next_bookmark)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(None if wake_at == math.inf else wake_at):
                        await watch.wake.wait()
                watch.wake.clear()
                with self._lock:
                    events, watch.pending, rv = watch.pending, [], self._rv
                if loop.time() >= next_bookmark:
                    events.append(flt.kind.bookmark(rv))
                    next_bookmark = loop.time() + self._bookmark_interval
                writer.write(b"".join(map(_chunk, events)))
                if loop.time() >= deadline:
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return True
                await writer.drain()
            return False
        finally:
            eof.cancel()
            await asyncio.wait([eof])  # before the connection reads its next request
            with self._lock:
                self._watches.discard(watch)


def service(
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    ports: Sequence[tuple[str, int]] = (("http", 80),),
) -> Obj:
    """A ClusterIP Service with named TCP ports."""
    meta = {"name": name, "namespace": namespace, "labels": labels or {}, "annotations": annotations or {}}
    spec_ports = [{"name": port_name, "port": port, "protocol": "TCP", "targetPort": port} for port_name, port in ports]
    spec = {"type": "ClusterIP", "selector": {"app": name}, "ports": spec_ports}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def kube_namespace(name: str, *, labels: dict[str, str] | None = None) -> Obj:
    """An active Namespace; `apply` adds the `kubernetes.io/metadata.name` label, as kube-apiserver does."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def endpoint_slice(
    service_name: str,
    namespace: str,
    *,
    addresses_ready: Sequence[tuple[str, bool]],
    port_name: str = "http",
    port: int = 80,
    name: str | None = None,
) -> Obj:
    """An IPv4 EndpointSlice of a Service, one endpoint per address, as the EndpointSlice controller writes it."""
    labels = {
        "kubernetes.io/service-name": service_name,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    endpoints = [
        {"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": False}}
        for ip, ready in addresses_ready
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service_name}-slice", "namespace": namespace, "labels": labels},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }
