"""Targets from Kubernetes: every MCP port of every Service carrying the bridge label, reached on a ready endpoint.

Three watches feed one picture of the cluster: Services matching the label selector, EndpointSlices (which
endpoints are ready), and, with a namespace selector, the Namespaces it picks. Each is listed, then watched from the
list's resourceVersion with bookmarks, so a watch resumes where it stopped; `410 Gone` (history compacted) lists
again, and any other failure (API server restarting, connection dropped) backs off and lists again. A failure never
empties the picture: targets stay served from what was last seen until a new list replaces it.

A target's URL is one ready endpoint of its Service (pod IP and port), not the Service's virtual IP: an MCP session
lives in one bridge pod, so the upstream session must stay on that pod. The endpoint is kept while it stays ready
and another is picked (a new session) when it goes; replicas pick by rendezvous hashing of their own identity, so
several aggregator replicas spread over a bridge's pods. A Service with no ready endpoint is a target that is down,
with the reason, and nothing is dialled.

lightkube is used only here (an import-linter contract says so).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx2
import yaml
from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig
from lightkube.core.exceptions import ConfigError as KubeConfigError
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from aggregator.config import parse_target
from aggregator.discovery import Publish, Target
from aggregator.exceptions import ConfigError

__all__ = ["APP_PROTOCOLS", "DEFAULT_SELECTOR", "KubernetesSource"]

logger = logging.getLogger(__name__)

DEFAULT_SELECTOR: Final = "plexus.dev/bridge=true"
APP_PROTOCOLS: Final = {
    "plexus.dev/mcp": "streamable-http",
    "plexus.dev/mcp-sse": "sse",
    "agentgateway.dev/mcp": "streamable-http",
    "agentgateway.dev/mcp-sse": "sse",
    "kgateway.dev/mcp": "sse",
}
"""Service port `appProtocol` values that mark an MCP endpoint, and the transport each means (the gateways' own
values are accepted so that manifests written for them work unchanged)."""
ANNOTATION: Final = "plexus.dev/"
DEFAULT_PATHS: Final = {"streamable-http": "/mcp", "sse": "/sse"}
POLICY_ANNOTATIONS: Final = ("include", "exclude", "rename", "descriptions", "forward-headers", "timeouts")
"""Annotations `plexus.dev/<key>` holding a target policy key of the config file, as YAML (lists may be given as
comma-separated text)."""
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 30.0
"""Backoff bounds, in seconds, between attempts after an API error."""
WATCH_TIMEOUT: Final = 300
"""Seconds the API server keeps one watch request open before it is renewed (from the last version seen)."""
WATCH_IDLE_LIMIT: Final = WATCH_TIMEOUT + 30
"""Seconds without any event, bookmark or renewal after which a watch's connection is taken for dead."""
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
MAX_REPORTED: Final = 1000
"""Distinct problems remembered as already logged; past this the memory starts over."""

Key = tuple[str, str]
"""(namespace, name) of an object."""


@dataclass
class _Watched:
    """The last known objects of one watched kind, by (namespace, name)."""

    objects: dict[Key, Any]
    synced: bool = False


class KubernetesSource:
    """Publishes a target for each MCP port of each selected Service, reached on one of its ready endpoints."""

    def __init__(
        self,
        *,
        selector: str = DEFAULT_SELECTOR,
        namespaces: tuple[str, ...] = (),
        namespace_selector: str | None = None,
        kubeconfig: Path | None = None,
        identity: str = "",
        static: Mapping[str, Target] | None = None,
    ) -> None:
        """`namespaces` limits the watch to those namespaces (all when empty); `namespace_selector` to namespaces
        whose labels match. `identity` (the pod name) decides which ready endpoint this replica picks. Targets of
        `static` (from the config file) are published alongside, and win a name clash.
        """
        if namespaces and namespace_selector:
            raise ConfigError("Give either --namespaces or --namespace-selector, not both.")
        self._selector = selector
        self._namespaces = namespaces
        self._namespace_selector = namespace_selector
        self._kube_config = _kube_config(kubeconfig)
        self._identity = identity
        self._static = dict(static or {})
        # One watch of each kind per namespace watched (or one for all): each list replaces only its own objects.
        namespaces_watched = len(namespaces) or 1
        self._services = [_Watched({}) for _ in range(namespaces_watched)]
        self._slices = [_Watched({}) for _ in range(namespaces_watched)]
        self._selected_namespaces = _Watched({})
        self._pinned: dict[str, str] = {}
        self._reported: set[str] = set()
        self._published: dict[str, Target] | None = None
        self._publish: Publish | None = None

    async def run(self, publish: Publish) -> None:
        """Watch until cancelled, publishing the target set after every change of what it is made from."""
        self._publish = publish
        client = AsyncClient(config=self._kube_config)
        try:
            async with asyncio.TaskGroup() as group:
                for index, namespace in enumerate(self._namespaces or (ALL_NS,)):
                    group.create_task(self._keep(client, Service, namespace, self._selector, self._services[index]))
                    group.create_task(self._keep(client, EndpointSlice, namespace, None, self._slices[index]))
                if self._namespace_selector:
                    group.create_task(
                        self._keep(client, Namespace, None, self._namespace_selector, self._selected_namespaces)
                    )
        finally:
            await client.close()

    # Watching.

    async def _keep(
        self, client: AsyncClient, kind: type[Any], namespace: str | None, selector: str | None, into: _Watched
    ) -> None:
        """List, then watch from the list's version. A dropped watch resumes from the last version seen (events
        and bookmarks move it on); only 410 Gone (that version is compacted away) lists again.
        """
        delay = RETRY_FIRST
        what = f"{kind.__name__}s" + (f" in {namespace}" if namespace not in (None, ALL_NS) else "")
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list(client, kind, namespace, selector, into)
                watch = self._watch(client, kind, namespace, selector, version)
                try:
                    while True:
                        try:
                            async with asyncio.timeout(WATCH_IDLE_LIMIT):
                                event, obj = await anext(watch)
                        except StopAsyncIteration:
                            break  # the server ended the watch (its timeout): renew it from the version reached
                        version = obj.metadata.resourceVersion or version
                        delay = RETRY_FIRST
                        if event == "BOOKMARK":
                            continue
                        key = (obj.metadata.namespace or "", obj.metadata.name)
                        if event == "DELETED":
                            into.objects.pop(key, None)
                        else:
                            into.objects[key] = obj
                        self._changed()
                finally:
                    await watch.aclose()
                continue
            except TimeoutError:
                # lightkube 1.0.1 sets no read timeout on watches: a connection that died silently is noticed here.
                logger.info("No word from the watch of %s for %d s; reconnecting.", what, WATCH_IDLE_LIMIT)
                continue
            except ApiError as exc:
                if exc.status.code == 410:
                    logger.info("The watch of %s expired (410 Gone); listing again.", what)
                    version = None
                    continue
                logger.warning("Kubernetes API error on %s: %s; retrying in %.1f s.", what, exc.status.message, delay)
            except (httpx2.HTTPError, OSError) as exc:
                logger.warning("Cannot reach the Kubernetes API for %s: %s; retrying in %.1f s.", what, exc, delay)
            except Exception as exc:  # an object lightkube cannot decode, say: never end the watch over it
                logger.error("Watching %s failed: %r; listing again in %.1f s.", what, exc, delay)
                version = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _list(
        self, client: AsyncClient, kind: type[Any], namespace: str | None, selector: str | None, into: _Watched
    ) -> str:
        """Replace what is known of `kind` with a fresh list (all pages); return its resourceVersion."""
        request = client._client.prepare_request("list", res=kind, namespace=namespace, params=_selector(selector))
        listing = client._client.list(request)
        objects = {(obj.metadata.namespace or "", obj.metadata.name): obj async for obj in listing}
        into.objects, into.synced = objects, True
        self._changed()
        return listing.resourceVersion

    def _watch(
        self, client: AsyncClient, kind: type[Any], namespace: str | None, selector: str | None, version: str
    ) -> AsyncGenerator[tuple[str, Any], None]:
        # lightkube 1.0.1's public watch() cannot ask for bookmarks (allowWatchBookmarks); its lower layer can.
        params = {**_selector(selector), "resourceVersion": version, "allowWatchBookmarks": "true"}
        params["timeoutSeconds"] = str(WATCH_TIMEOUT)
        request = client._client.prepare_request("list", res=kind, namespace=namespace, watch=True, params=params)
        watch: AsyncGenerator[tuple[str, Any], None] = client._client.watch(request)
        return watch

    # From objects to targets.

    def _changed(self) -> None:
        """Publish the target set if it differs from the last one published (and every watch has listed once)."""
        watched = [*self._services, *self._slices] + ([self._selected_namespaces] if self._namespace_selector else [])
        if self._publish is None or not all(w.synced for w in watched):
            return
        targets = {**self._targets(), **self._static}
        if targets != self._published:
            self._published = targets
            self._publish(targets)

    def _targets(self) -> dict[str, Target]:
        allowed = {name for _, name in self._selected_namespaces.objects} if self._namespace_selector else None
        ready = self._ready_endpoints()
        targets: dict[str, Target] = {}
        services = {key: obj for watched in self._services for key, obj in watched.objects.items()}
        for (namespace, name), service in sorted(services.items()):
            if allowed is not None and namespace not in allowed:
                continue
            for target in self._service_targets(service, ready.get((namespace, name), {})):
                if target.name in targets or target.name in self._static:
                    self._report(
                        f"Service {namespace}/{name}: the target name {target.name!r} is taken; "
                        "set the plexus.dev/name annotation."
                    )
                    continue
                targets[target.name] = target
        self._pinned = {name: pin for name, pin in self._pinned.items() if name in targets}
        return targets

    def _service_targets(self, service: Any, ready: Mapping[str, list[tuple[str, int]]]) -> list[Target]:
        """The targets of one Service: one per MCP port; a port with no ready endpoint gives a down target."""
        meta = service.metadata
        annotations = meta.annotations or {}
        ports = [port for port in service.spec.ports or () if port.appProtocol in APP_PROTOCOLS]
        where = f"Service {meta.namespace}/{meta.name}"
        targets = []
        for port in ports:
            transport = annotations.get(ANNOTATION + "transport", APP_PROTOCOLS[port.appProtocol])
            if ANNOTATION + "name" in annotations and len(ports) == 1:
                name = annotations[ANNOTATION + "name"]
            else:
                name = meta.name if len(ports) == 1 else f"{meta.name}-{port.name or port.port}"
            path = annotations.get(ANNOTATION + "path", DEFAULT_PATHS.get(transport, "/mcp"))
            endpoints = ready.get(port.name or "", [])
            pinned = self._pin(name, endpoints)
            entry: dict[str, Any] = {
                "name": name,
                "url": _url(pinned or f"{meta.name}.{meta.namespace}.svc:{port.port}", path),
                "transport": transport,
            }
            for key in POLICY_ANNOTATIONS:
                if ANNOTATION + key in annotations:
                    entry[key.replace("-", "_")] = _annotation_value(key, annotations[ANNOTATION + key])
            try:
                target = parse_target(entry, f"{where} port {port.name or port.port}")
            except ConfigError as exc:
                self._report(f"{exc} Fix the Service's plexus.dev/ annotations; it is not served until then.")
                continue
            if pinned is None:
                reason = f"{where} has no ready endpoint for port {port.name or port.port}"
                target = Target(target.name, target.url, target.transport, target.policy, unavailable=reason)
            targets.append(target)
        return targets

    def _report(self, problem: str) -> None:
        """Log a problem of the cluster's objects once, not at every event that recomputes the targets."""
        if problem not in self._reported:
            if len(self._reported) >= MAX_REPORTED:
                self._reported.clear()
            self._reported.add(problem)
            logger.error("%s", problem)

    def _ready_endpoints(self) -> dict[Key, dict[str, list[tuple[str, int]]]]:
        """Ready (address, port) pairs of each Service, by port name."""
        ready: dict[Key, dict[str, list[tuple[str, int]]]] = {}
        slices = ((key, obj) for watched in self._slices for key, obj in watched.objects.items())
        for (namespace, _), endpoint_slice in slices:
            service = (endpoint_slice.metadata.labels or {}).get(SERVICE_NAME_LABEL)
            if service is None:
                continue
            by_port = ready.setdefault((namespace, service), {})
            for port in endpoint_slice.ports or ():
                for endpoint in endpoint_slice.endpoints or ():
                    conditions = endpoint.conditions
                    if conditions is not None and conditions.ready is False:
                        continue
                    for address in endpoint.addresses[:1]:
                        by_port.setdefault(port.name or "", []).append((address, port.port))
        return ready

    def _pin(self, target: str, endpoints: list[tuple[str, int]]) -> str | None:
        """The endpoint this replica uses for `target`: the same as before while it stays ready."""
        choices = {f"{address}:{port}" if ":" not in address else f"[{address}]:{port}" for address, port in endpoints}
        current = self._pinned.get(target)
        if current in choices:
            return current
        if not choices:
            self._pinned.pop(target, None)
            return None
        chosen = max(choices, key=lambda choice: hashlib.sha256(f"{self._identity}/{choice}".encode()).digest())
        self._pinned[target] = chosen
        return chosen


def _kube_config(path: Path | None) -> KubeConfig:
    try:
        if path is not None:
            return KubeConfig.from_file(path)
        return KubeConfig.from_env()  # in-cluster service account first, then ~/.kube/config
    except (KubeConfigError, OSError) as exc:
        raise ConfigError(
            f"No Kubernetes configuration: {exc}. Run in a pod with a service account, or give --kubeconfig."
        ) from exc


def _selector(selector: str | None) -> dict[str, str]:
    return {"labelSelector": selector} if selector else {}


def _url(host_port: str, path: str) -> str:
    return f"http://{host_port}{path if path.startswith('/') else '/' + path}"


def _annotation_value(key: str, raw: str) -> Any:
    """An annotation's value as the config key expects it: YAML, or comma-separated text for the list keys."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if key in ("include", "exclude", "forward-headers") and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value
