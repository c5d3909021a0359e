"""The Kubernetes discovery source, through the real lightkube client, against the stub API server; and end to end,
the aggregator picking up real bridges (local processes) as their Service objects come and go.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client

from aggregator.discovery import Target
from aggregator.discovery.kubernetes import KubernetesSource
from tests.aggregator.conftest import run_aggregator, targets
from tests.aggregator.discovery.kube_stub import StubApiServer, endpoint_slice, kube_namespace, service
from tests.conftest import ECHO_SERVER, run_bridge

pytestmark = pytest.mark.anyio

LABEL = {"plexus.dev/bridge": "true"}
CONVERGE = 5.0
"""Seconds a published change may take here (the requirement is 2 s from the watch event; this is a test bound)."""


def mcp_service(
    name: str,
    namespace: str = "tools",
    *,
    labels: Mapping[str, str] = LABEL,
    annotations: dict[str, str] | None = None,
    ports: tuple[tuple[str, int, str | None], ...] = (("mcp", 8080, "plexus.dev/mcp"),),
) -> dict[str, Any]:
    """A Service whose ports carry the given appProtocols (None: a plain port)."""
    obj = service(name, namespace, labels=dict(labels), annotations=annotations, ports=[(n, p) for n, p, _ in ports])
    for spec, (_, _, protocol) in zip(obj["spec"]["ports"], ports, strict=True):
        if protocol is not None:
            spec["appProtocol"] = protocol
    return obj


def ready(name: str, *addresses: str, namespace: str = "tools", port: int = 8080, port_name: str = "mcp") -> Any:
    return endpoint_slice(
        name, namespace, addresses_ready=[(a, True) for a in addresses], port_name=port_name, port=port
    )


class Published:
    """What the source published, newest last, and a way to wait for a set that satisfies a condition."""

    def __init__(self) -> None:
        self.sets: list[dict[str, Target]] = []
        self._changed = anyio.Event()

    def __call__(self, targets: Mapping[str, Target]) -> None:
        self.sets.append(dict(targets))
        self._changed.set()
        self._changed = anyio.Event()

    @property
    def latest(self) -> dict[str, Target]:
        return self.sets[-1] if self.sets else {}

    async def until(self, condition: Callable[[dict[str, Target]], bool], timeout: float = CONVERGE) -> None:
        with anyio.fail_after(timeout):
            while not (self.sets and condition(self.latest)):
                await self._changed.wait()


@contextlib.asynccontextmanager
async def watching(api: StubApiServer, kubeconfig: Path, **options: Any) -> AsyncIterator[Published]:
    """A source watching `api` (its kubeconfig written to `kubeconfig`) for the duration of the block."""
    published = Published()
    api.write_kubeconfig(kubeconfig)
    source = KubernetesSource(kubeconfig=kubeconfig, identity="replica-a", **options)
    async with anyio.create_task_group() as group:
        group.start_soon(source.run, published)
        yield published
        group.cancel_scope.cancel()


async def test_each_mcp_port_of_a_labelled_service_is_a_target_on_a_ready_endpoint(tmp_path: Path) -> None:
    with StubApiServer() as api:
        api.apply(mcp_service("github"))
        api.apply(ready("github", "10.0.0.5"))
        api.apply(mcp_service("unlabelled", labels={}))
        api.apply(mcp_service("web", ports=(("http", 80, None),)))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: "github" in targets)
            assert set(published.latest) == {"github"}
            github = published.latest["github"]
            assert (github.url, github.transport, github.unavailable) == (
                "http://10.0.0.5:8080/mcp",
                "streamable-http",
                None,
            )


async def test_names_paths_transports_and_policy_come_from_the_service(tmp_path: Path) -> None:
    """Several MCP ports get `<service>-<port>`; the gateways' appProtocols work; plexus.dev/ annotations apply."""
    with StubApiServer() as api:
        api.apply(
            mcp_service(
                "multi", ports=(("streamable", 8080, "agentgateway.dev/mcp"), ("legacy", 9090, "kgateway.dev/mcp"))
            )
        )
        api.apply(
            endpoint_slice("multi", "tools", addresses_ready=[("10.0.0.7", True)], port_name="streamable", port=8080)
        )
        api.apply(endpoint_slice("multi", "tools", addresses_ready=[("10.0.0.7", True)], port_name="legacy", port=9090,
                                 name="multi-legacy"))  # fmt: skip
        annotations = {
            "plexus.dev/name": "search",
            "plexus.dev/path": "/custom/mcp",
            "plexus.dev/include": "find_*, get_*",
            "plexus.dev/rename": "{find_issues: issues}",
            "plexus.dev/timeouts": "{call: 30}",
        }
        api.apply(mcp_service("search-bridge", annotations=annotations))
        api.apply(ready("search-bridge", "10.0.0.8"))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: len(targets) == 3)
            latest = published.latest
            assert latest["multi-streamable"].url == "http://10.0.0.7:8080/mcp"
            assert (latest["multi-legacy"].url, latest["multi-legacy"].transport) == ("http://10.0.0.7:9090/sse", "sse")
            search = latest["search"]
            assert search.url == "http://10.0.0.8:8080/custom/mcp"
            assert search.policy.include == ("find_*", "get_*")
            assert search.policy.rename == {"find_issues": "issues"}
            assert search.policy.call_timeout == 30.0


async def test_relabelling_annotating_and_deleting_services_change_the_targets(tmp_path: Path) -> None:
    with StubApiServer() as api:
        api.apply(mcp_service("one"))
        api.apply(ready("one", "10.0.0.1"))
        api.apply(mcp_service("two"))
        api.apply(ready("two", "10.0.0.2"))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: set(targets) == {"one", "two"})
            api.apply(mcp_service("one", labels={"plexus.dev/bridge": "false"}))
            await published.until(lambda targets: set(targets) == {"two"})
            api.apply(mcp_service("two", annotations={"plexus.dev/exclude": "danger_*"}))
            await published.until(lambda targets: targets["two"].policy.exclude == ("danger_*",))
            api.delete("Service", "two", "tools")
            await published.until(lambda targets: targets == {})
            api.apply(mcp_service("one"))
            await published.until(lambda targets: set(targets) == {"one"})


async def test_a_service_without_a_ready_endpoint_is_down_and_its_endpoint_stays_pinned(tmp_path: Path) -> None:
    """No ready endpoint: the target is published as unavailable, with the reason. A pinned endpoint is kept while it
    stays ready, even when others come; when it goes, another is picked.
    """
    with StubApiServer() as api:
        api.apply(mcp_service("github"))
        api.apply(endpoint_slice("github", "tools", addresses_ready=[("10.0.0.5", False)], port_name="mcp", port=8080))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: "github" in targets)
            assert published.latest["github"].unavailable == "Service tools/github has no ready endpoint for port mcp"
            api.apply(ready("github", "10.0.0.5"))
            await published.until(lambda targets: targets["github"].unavailable is None)
            assert published.latest["github"].url == "http://10.0.0.5:8080/mcp"
            count = len(published.sets)
            api.apply(ready("github", "10.0.0.5", "10.0.0.6", "10.0.0.9"))
            await anyio.sleep(0.5)
            assert published.latest["github"].url == "http://10.0.0.5:8080/mcp"
            assert len(published.sets) == count  # nothing changed that clients could see
            api.apply(ready("github", "10.0.0.6", "10.0.0.9"))
            await published.until(lambda targets: targets["github"].url != "http://10.0.0.5:8080/mcp")
            assert published.latest["github"].url in ("http://10.0.0.6:8080/mcp", "http://10.0.0.9:8080/mcp")


async def test_an_expired_watch_lists_again_and_never_empties_the_targets(tmp_path: Path) -> None:
    with StubApiServer() as api:
        api.apply(mcp_service("github"))
        api.apply(ready("github", "10.0.0.5"))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: "github" in targets)
            api.apply(mcp_service("other", namespace="elsewhere", labels={}))  # moves the version on, unseen
            api.compact()
            lists_before = sum(1 for request in api.requests if "watch" not in request.query)
            api.drop_watches()
            api.apply(mcp_service("late"))
            api.apply(ready("late", "10.0.0.6"))
            await published.until(lambda targets: set(targets) == {"github", "late"})
            assert sum(1 for request in api.requests if "watch" not in request.query) > lists_before
            assert all("github" in targets for targets in published.sets)


async def test_bookmarks_let_a_dropped_watch_resume_without_listing_again(tmp_path: Path) -> None:
    """Unselected objects move the version on; bookmarks keep the watcher's version current, so after compaction a
    cut watch resumes from the bookmark instead of hitting 410 and listing again.
    """
    with StubApiServer() as api:
        api.set_bookmark_interval(0.1)
        api.apply(mcp_service("github"))
        api.apply(ready("github", "10.0.0.5"))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: "github" in targets)
            for index in range(5):
                api.apply(mcp_service(f"unseen-{index}", labels={}))
            await anyio.sleep(0.5)  # a few bookmarks
            api.compact()
            lists_before = sum(1 for request in api.requests if "watch" not in request.query)
            api.drop_watches()
            api.apply(mcp_service("late"))
            api.apply(ready("late", "10.0.0.6"))
            await published.until(lambda targets: "late" in targets)
            assert any(request.query.get("allowWatchBookmarks") == "true" for request in api.requests)
            services_lists = [r for r in api.requests if "watch" not in r.query and r.path.endswith("/services")]
            assert sum(1 for request in api.requests if "watch" not in request.query) == lists_before, services_lists


async def test_an_api_server_restart_keeps_the_targets_and_catches_up(tmp_path: Path) -> None:
    with StubApiServer() as api:
        api.apply(mcp_service("github"))
        api.apply(ready("github", "10.0.0.5"))
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: "github" in targets)
            with api.down():
                await anyio.sleep(1.0)
                api.apply(mcp_service("late"))
                api.apply(ready("late", "10.0.0.6"))
            await published.until(lambda targets: set(targets) == {"github", "late"}, timeout=15)
            assert all("github" in targets for targets in published.sets)


async def test_two_hundred_services_at_once(tmp_path: Path) -> None:
    with StubApiServer() as api:
        async with watching(api, tmp_path / "kubeconfig") as published:
            await published.until(lambda targets: targets == {})
            for index in range(200):
                api.apply(mcp_service(f"svc-{index:03d}"))
                api.apply(ready(f"svc-{index:03d}", f"10.1.{index // 250}.{index % 250 + 1}"))
            await published.until(
                lambda targets: len(targets) == 200 and all(t.unavailable is None for t in targets.values()), timeout=20
            )
            assert len({target.url for target in published.latest.values()}) == 200


async def test_namespaces_by_list_and_by_label_selector(tmp_path: Path) -> None:
    with StubApiServer() as api:
        for namespace, team in (("team-a", "yes"), ("team-b", "no")):
            api.apply(kube_namespace(namespace, labels={"mcp": team}))
            api.apply(mcp_service(f"svc-{namespace}", namespace=namespace))
            api.apply(ready(f"svc-{namespace}", "10.0.0.1", namespace=namespace))
        async with watching(api, tmp_path / "a.kubeconfig", namespaces=("team-b",)) as published:
            await published.until(lambda targets: set(targets) == {"svc-team-b"})
        async with watching(api, tmp_path / "both.kubeconfig", namespaces=("team-a", "team-b")) as published:
            await published.until(lambda targets: set(targets) == {"svc-team-a", "svc-team-b"})
            api.apply(mcp_service("late", namespace="team-a"))
            api.apply(ready("late", "10.0.0.2", namespace="team-a"))
            await published.until(lambda targets: set(targets) == {"svc-team-a", "svc-team-b", "late"})
            api.delete("Service", "late", "team-a")
            await published.until(lambda targets: set(targets) == {"svc-team-a", "svc-team-b"})
        async with watching(api, tmp_path / "b.kubeconfig", namespace_selector="mcp=yes") as published:
            await published.until(lambda targets: set(targets) == {"svc-team-a"})
            api.apply(kube_namespace("team-b", labels={"mcp": "yes"}))
            await published.until(lambda targets: set(targets) == {"svc-team-a", "svc-team-b"})


async def test_a_bad_annotation_skips_that_service_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with StubApiServer() as api:
        api.apply(mcp_service("broken", annotations={"plexus.dev/timeouts": "{call: -1}"}))
        api.apply(ready("broken", "10.0.0.5"))
        api.apply(mcp_service("fine"))
        api.apply(ready("fine", "10.0.0.6"))
        with caplog.at_level(logging.ERROR, logger="aggregator.discovery.kubernetes"):
            async with watching(api, tmp_path / "kubeconfig") as published:
                await published.until(lambda targets: "fine" in targets)
                assert "broken" not in published.latest
        assert "Service tools/broken port mcp ('broken'): timeouts.call must be a positive number" in caplog.text
        assert caplog.text.count("tools/broken") == 1  # once, not at every event


async def test_the_aggregator_picks_up_a_bridge_when_its_service_appears_and_drops_it_when_it_goes(
    tmp_path: Path,
) -> None:
    """End to end: a connected client gets list_changed and the bridge's tools when its Service and endpoints are
    created, and loses them when the Service is deleted.
    """
    with StubApiServer() as api, run_bridge("--", *ECHO_SERVER) as bridge:
        host, port = bridge.url.removeprefix("http://").split(":")
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        with run_aggregator("kubernetes", "--kubeconfig", str(kubeconfig)) as aggregator:
            changed = anyio.Event()

            async def on_message(message: Any) -> None:
                if "ToolListChanged" in type(getattr(message, "root", message)).__name__:
                    changed.set()

            async with Client(aggregator.mcp, mode="legacy", message_handler=on_message) as client:
                assert (await client.list_tools()).tools == []
                api.apply(mcp_service("echo", ports=(("mcp", int(port), "plexus.dev/mcp"),)))
                api.apply(ready("echo", host, port=int(port)))
                with anyio.fail_after(CONVERGE):
                    await changed.wait()
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert names == {"echo_echo", "echo_pid", "echo_announce"}
                result = await client.call_tool("echo_echo", {"message": "found by its Service"})
                assert result.content[0].text == "found by its Service"  # type: ignore[union-attr]

                changed = anyio.Event()
                api.delete("Service", "echo", "tools")
                with anyio.fail_after(CONVERGE):
                    await changed.wait()
                assert (await client.list_tools()).tools == []
            assert "echo" not in targets(aggregator)
