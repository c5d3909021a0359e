"""The stub API server against the real lightkube client: if these pass, discovery tests see what a cluster would show.

Each test drives `StubApiServer` with `lightkube.AsyncClient` (or the sync `Client`) the way the aggregator will,
including lightkube's lower layer for watch bookmarks, which its public `watch()` never asks for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import httpx2
import pytest
from lightkube import ALL_NS, ApiError, AsyncClient, Client, KubeConfig
from lightkube.operators import exists, in_, not_equal, not_exists, not_in
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import on_error_retry

from tests.aggregator.discovery.kube_stub import Request, StubApiServer, endpoint_slice, kube_namespace, service

pytestmark = pytest.mark.anyio

WAIT = 5.0
"""Seconds any one wait may take: every answer here is local and takes milliseconds."""

T = TypeVar("T")
Event = tuple[str, str | None, str | None]
"""A watch event as (type, object name, resourceVersion)."""


@pytest.fixture
def api() -> Iterator[StubApiServer]:
    with StubApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: StubApiServer, tmp_path: Path) -> KubeConfig:
    return KubeConfig.from_file(api.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
async def client(kubeconfig: KubeConfig) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(kubeconfig)
    yield client
    await client.close()


@contextlib.asynccontextmanager
async def watching(events: AsyncIterable[tuple[str, T]]) -> AsyncIterator[AsyncGenerator[tuple[str, T], None]]:
    """A lightkube watch, closed on exit: its generator holds an open response until then."""
    generator = cast(AsyncGenerator[tuple[str, T], None], events)
    async with contextlib.aclosing(generator):
        yield generator


def ident(obj: Any) -> tuple[str | None, str | None]:
    """An object's name and resourceVersion (lightkube types `metadata` as optional)."""
    return obj.metadata.name, obj.metadata.resourceVersion


async def take(events: AsyncIterator[tuple[str, Any]], count: int) -> list[Event]:
    with anyio.fail_after(WAIT):
        return [(kind, *ident(obj)) for kind, obj in [await anext(events) for _ in range(count)]]


def watches(api: StubApiServer) -> list[Request]:
    return [request for request in api.requests if request.query.get("watch") == "true"]


async def names(client: AsyncClient, **selection: Any) -> list[str | None]:
    return [ident(obj)[0] async for obj in client.list(Service, namespace=ALL_NS, **selection)]


async def test_list_selects_by_labels_fields_and_namespace(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("a", "default", labels={"tier": "web", "mcp": "true"}))
    api.apply(service("b", "default", labels={"tier": "db"}))
    api.apply(service("c", "other", labels={"tier": "web"}))
    assert await names(client) == ["a", "b", "c"]
    assert await names(client, labels={"tier": "web"}) == ["a", "c"]
    assert await names(client, labels={"tier": "web", "mcp": exists()}) == ["a"]
    assert await names(client, labels={"mcp": not_exists()}) == ["b", "c"]
    assert await names(client, labels={"tier": in_(["db", "cache"])}) == ["b"]
    assert await names(client, labels={"tier": not_in(["db"])}) == ["a", "c"]
    assert await names(client, labels={"mcp": not_equal("true")}) == ["b", "c"]
    assert await names(client, fields={"metadata.namespace": "other"}) == ["c"]
    assert await names(client, fields={"metadata.name": not_in(["a", "c"])}) == ["b"]
    assert [ident(s)[0] async for s in client.list(Service, namespace="other")] == ["c"]
    # namespace=None is the client's default namespace in lightkube, not all of them.
    assert [ident(s)[0] async for s in client.list(Service)] == ["a", "b"]
    assert [r.path for r in api.requests[-2:]] == [
        "/api/v1/namespaces/other/services",
        "/api/v1/namespaces/default/services",
    ]
    async with httpx2.AsyncClient(base_url=api.url) as http:  # the syntax lightkube never sends
        response = await http.get("/api/v1/services", params={"labelSelector": " tier == web , !mcp "})
    assert [item["metadata"]["name"] for item in response.json()["items"]] == ["c"]


async def test_list_items_and_single_objects_decode(api: StubApiServer, client: AsyncClient) -> None:
    stored = api.apply(
        endpoint_slice("a", "default", addresses_ready=[("10.0.0.1", True), ("10.0.0.2", False)], port=8080)
    )
    [listed] = [s async for s in client.list(EndpointSlice, namespace=ALL_NS)]
    assert listed.metadata is not None and listed.metadata.uid == stored["metadata"]["uid"]
    assert [(e.addresses, e.conditions.ready) for e in listed.endpoints or [] if e.conditions] == [
        (["10.0.0.1"], True),
        (["10.0.0.2"], False),
    ]
    assert [(p.name, p.port) for p in listed.ports or []] == [("http", 8080)]
    got = await client.get(EndpointSlice, "a-slice", namespace="default")
    assert got.metadata is not None and got.metadata.resourceVersion == stored["metadata"]["resourceVersion"]
    api.apply(kube_namespace("team-a", labels={"plexus": "on"}))
    [ns] = [n async for n in client.list(Namespace, labels={"kubernetes.io/metadata.name": "team-a"})]
    assert ns.metadata is not None and ns.metadata.labels == {"plexus": "on", "kubernetes.io/metadata.name": "team-a"}


async def test_pages_read_one_snapshot(api: StubApiServer, client: AsyncClient) -> None:
    for name in "abcde":
        api.apply(service(name, "default"))
    listing = client.list(Service, namespace=ALL_NS, chunk_size=2)
    seen = []
    with anyio.fail_after(WAIT):
        async for obj in listing:
            seen.append(ident(obj)[0])
            if len(seen) == 1:  # changes after the first page do not show in the later ones
                api.apply(service("aa", "default"))
                api.delete("Service", "e", "default")
    assert seen == ["a", "b", "c", "d", "e"]
    assert listing.resourceVersion == "5"
    pages = [r.query for r in api.requests]
    assert [q.get("limit") for q in pages] == ["2", "2", "2"]
    assert "continue" not in pages[0] and all(q.get("continue") for q in pages[1:])
    assert await names(client) == ["a", "aa", "b", "c", "d"]


async def test_paging_from_a_compacted_version_is_gone(api: StubApiServer, client: AsyncClient) -> None:
    for name in "abc":
        api.apply(service(name, "default"))
    with anyio.fail_after(WAIT), pytest.raises(ApiError) as error:
        async for _ in client.list(Service, namespace=ALL_NS, chunk_size=1):
            api.apply(service("d", "default"))
            api.compact()
    assert error.value.status.code == 410 and error.value.status.reason == "Expired"


async def test_watch_from_a_version_sees_each_change_in_order(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("old", "default"))
    listing = client.list(Service, namespace=ALL_NS)
    assert [ident(s)[0] async for s in listing] == ["old"]
    api.apply(service("a", "default"))
    api.apply(service("a", "default", labels={"v": "2"}))
    api.apply(service("a", "default", labels={"v": "2"}))  # a no-op write: no new version, no event
    api.delete("Service", "a", "default")
    async with watching(client.watch(Service, namespace=ALL_NS, resource_version=listing.resourceVersion)) as events:
        assert await take(events, 3) == [("ADDED", "a", "2"), ("MODIFIED", "a", "3"), ("DELETED", "a", "4")]
        api.apply(service("b", "other"))
        assert await take(events, 1) == [("ADDED", "b", "5")]


async def test_watch_without_a_version_starts_with_the_current_objects(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("a", "default"))
    api.apply(service("b", "other"))
    async with watching(client.watch(Service, namespace="other")) as events:
        assert await take(events, 1) == [("ADDED", "b", "2")]
        api.apply(service("c", "default"))
        api.apply(service("d", "other"))
        assert await take(events, 1) == [("ADDED", "d", "4")]


async def test_relabelling_moves_an_object_in_and_out_of_a_selection(api: StubApiServer, client: AsyncClient) -> None:
    """Live, then replayed from the history: the watch cache filters both the same way."""
    api.apply(service("a", "default", labels={"mcp": "true"}))
    expected = [("DELETED", "a", "3"), ("ADDED", "a", "4"), ("MODIFIED", "a", "5")]
    async with watching(client.watch(Service, namespace=ALL_NS, labels={"mcp": "true"})) as events:
        assert await take(events, 1) == [("ADDED", "a", "1")]  # the watch is connected from here on
        api.apply(service("other", "default"))
        api.apply(service("a", "default", labels={"mcp": "false"}))
        api.apply(service("a", "default", labels={"mcp": "true", "x": "y"}))
        api.apply(service("a", "default", labels={"mcp": "true", "x": "z"}))
        assert await take(events, 3) == expected
    async with watching(
        client.watch(Service, namespace=ALL_NS, labels={"mcp": "true"}, resource_version="1")
    ) as events:
        assert await take(events, 3) == expected


async def test_watch_from_a_compacted_version_is_gone(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("a", "default"))
    api.apply(service("b", "default"))
    api.compact()
    async with watching(client.watch(Service, namespace=ALL_NS, resource_version="1")) as events:
        with anyio.fail_after(WAIT), pytest.raises(ApiError) as error:
            await anext(events)
    assert error.value.status.code == 410 and error.value.status.message == "too old resource version: 1 (2)"
    # With on_error retrying, lightkube restarts the watch without a version: the current objects, as ADDED.
    async with watching(
        client.watch(Service, namespace=ALL_NS, resource_version="1", on_error=on_error_retry)
    ) as events:
        assert await take(events, 2) == [("ADDED", "a", "1"), ("ADDED", "b", "2")]
    assert [w.query.get("resourceVersion") for w in watches(api)] == ["1", "1", None]


async def test_a_dropped_watch_resumes_from_the_last_version_seen(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("a", "default"))
    async with watching(client.watch(Service, namespace=ALL_NS, on_error=on_error_retry)) as events:
        assert await take(events, 1) == [("ADDED", "a", "1")]
        api.drop_watches()
        api.apply(service("b", "default"))
        assert await take(events, 1) == [("ADDED", "b", "2")]
    assert [w.query.get("resourceVersion") for w in watches(api)] == [None, "1"]
    async with watching(client.watch(Service, namespace=ALL_NS)) as events:
        assert len(await take(events, 2)) == 2
        api.drop_watches()
        with anyio.fail_after(WAIT), pytest.raises(httpx2.RemoteProtocolError):
            await anext(events)


async def test_timeout_seconds_ends_a_watch_cleanly(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("a", "default"))
    async with watching(client.watch(Service, namespace=ALL_NS, server_timeout=1)) as events:
        assert await take(events, 1) == [("ADDED", "a", "1")]
        await anyio.sleep(1.5)  # the server ends the stream after 1 s; lightkube reconnects when next asked
        api.apply(service("b", "default"))
        assert await take(events, 1) == [("ADDED", "b", "2")]
    assert [w.query.get("resourceVersion") for w in watches(api)] == [None, "1"]


async def test_a_restart_keeps_objects_and_versions(api: StubApiServer, client: AsyncClient) -> None:
    api.apply(service("a", "default"))
    api.apply(service("b", "default"))
    before = [ident(s) async for s in client.list(Service, namespace=ALL_NS)]
    async with watching(client.watch(Service, namespace=ALL_NS, on_error=on_error_retry)) as events:
        assert len(await take(events, 2)) == 2
        with api.down():
            # lightkube hands a cut stream to on_error, but not a refused reconnection: that reaches the caller.
            with anyio.fail_after(WAIT), pytest.raises(httpx2.ConnectError):
                await anext(events)
            with pytest.raises(httpx2.ConnectError):
                await names(client)
            api.apply(service("c", "default"))
    after = [ident(s) async for s in client.list(Service, namespace=ALL_NS)]
    assert after == [*before, ("c", "3")]
    async with watching(client.watch(Service, namespace=ALL_NS, resource_version="2")) as events:
        assert await take(events, 1) == [("ADDED", "c", "3")]
    api.restart()
    assert api.apply(service("d", "default"))["metadata"]["resourceVersion"] == "4"


@pytest.mark.parametrize(
    ("resource", "path", "change"),
    [
        (Service, "/api/v1/services", ("ADDED", "b", "3")),
        (EndpointSlice, "/apis/discovery.k8s.io/v1/endpointslices", ("ADDED", "b-slice", "4")),
    ],
)
async def test_bookmarks_come_when_asked_for(
    api: StubApiServer, client: AsyncClient, resource: type[Service], path: str, change: Event
) -> None:
    """Through lightkube's lower layer, as the aggregator asks for them; an EndpointSlice bookmark must decode too."""
    api.set_bookmark_interval(0.05)
    api.apply(service("a", "default"))
    api.apply(endpoint_slice("a", "default", addresses_ready=[("10.0.0.1", True)]))
    params = {"allowWatchBookmarks": "true", "resourceVersion": "2"}
    br = client._client.prepare_request("list", res=resource, namespace=ALL_NS, watch=True, params=params)
    async with watching(client._client.watch(br, on_error=on_error_retry)) as events:
        assert await take(events, 1) == [("BOOKMARK", None, "2")]
        api.apply(service("b", "default"))
        api.apply(endpoint_slice("b", "default", addresses_ready=[]))
        seen: list[Event] = []
        with anyio.fail_after(WAIT):
            while seen[-1:] != [("BOOKMARK", None, "4")]:
                seen += await take(events, 1)
    assert [event for event in seen if event[0] != "BOOKMARK"] == [change]
    assert api.requests[-1] == Request("GET", path, {**params, "watch": "true"})


async def test_no_bookmarks_unless_asked_for(api: StubApiServer, client: AsyncClient) -> None:
    api.set_bookmark_interval(0.01)
    async with watching(client.watch(Service, namespace=ALL_NS)) as events:
        await anyio.sleep(0.2)
        api.apply(service("a", "default"))
        assert await take(events, 1) == [("ADDED", "a", "1")]


async def test_namespace_none_is_the_default_namespace_not_all(api: StubApiServer, client: AsyncClient) -> None:
    br = client._client.prepare_request("list", res=Service, namespace=None, watch=True, params={})
    assert br.url == "api/v1/namespaces/default/services"
    assert client._client.prepare_request("list", res=Service, namespace=ALL_NS, watch=True).url == "api/v1/services"


async def test_errors_are_status_objects(api: StubApiServer, client: AsyncClient) -> None:
    for labels in ("a in ()", "a b", "-a", "a=b c"):
        with pytest.raises(ApiError) as error:
            async for _ in client.list(Service, namespace=ALL_NS, labels={labels: None}):
                pass
        assert error.value.status.code == 400, labels
    with pytest.raises(ApiError) as error:
        await names(client, fields={"spec.type": "ClusterIP"})
    assert (error.value.status.code, error.value.status.message) == (400, "field label not supported: spec.type")
    with pytest.raises(ApiError) as error:
        await client.get(Service, "missing", namespace="default")
    assert (error.value.status.code, error.value.status.reason) == (404, "NotFound")
    # lightkube raises a plain HTTPStatusError, not an ApiError, when a watch request itself fails.
    async with watching(client.watch(Service, namespace=ALL_NS, labels={"a in ()": None})) as events:
        with anyio.fail_after(WAIT), pytest.raises(httpx2.HTTPStatusError) as failed:
            await anext(events)
    assert type(failed.value) is httpx2.HTTPStatusError and failed.value.response.status_code == 400
    async with httpx2.AsyncClient(base_url=api.url) as http:
        response = await http.get("/api/v1/pods")
        assert response.status_code == 404 and response.headers["content-type"] == "application/json"
        assert response.json()["kind"] == "Status"
        assert (await http.post("/api/v1/services")).status_code == 405


def test_a_synchronous_client_lists_too(api: StubApiServer, kubeconfig: KubeConfig) -> None:
    api.apply(kube_namespace("team-a"))
    with Client(kubeconfig) as client:
        assert [ident(n)[0] for n in client.list(Namespace)] == ["team-a"]


def test_objects_are_validated(api: StubApiServer) -> None:
    with pytest.raises(ValueError):
        api.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}})
    with pytest.raises(ValueError):
        api.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "no-namespace"}})
    with pytest.raises(KeyError):
        api.delete("Service", "missing", "default")
