"""The aggregator's configuration file: targets and top-level settings, validated before anything is served.

A file is either wholly valid or refused with a `ConfigError` that names the file, the place (target number and
name), the offending value and the fix, so a reload can keep serving the previous configuration instead of guessing.
Unknown keys and duplicate keys are errors: a misspelt `exclude` would otherwise expose tools silently.
The commented example `examples/aggregator.yaml` documents every key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

import yaml

from aggregator.discovery import Target, TargetPolicy, Transport
from aggregator.exceptions import ConfigError
from aggregator.naming import MAX_TARGET_NAME_LENGTH, valid_target_name

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_LIST_TIMEOUT",
    "PREFIX_MODES",
    "SEPARATORS",
    "AggregatorConfig",
    "PrefixMode",
    "load_config",
    "parse_config",
    "parse_target",
]

PrefixMode = Literal["always", "conditional", "never"]

PREFIX_MODES: Final[tuple[PrefixMode, ...]] = ("always", "conditional", "never")
"""When tool and prompt names get the `<target><separator>` prefix (see `aggregator.naming.prefix_applies`)."""

SEPARATORS: Final = ("_", "__", ".")
"""None of these can occur in a target name (`[a-z0-9-]`), so an exposed name splits at its first separator.

`-` is left out because target names (and Kubernetes names) use it. `_` suits every client; `.` reads well but some
LLM APIs refuse dots in tool names.
"""

DEFAULT_LIST_TIMEOUT: Final = 2.0
"""Seconds each target gets to answer a list: a slow target must not hold up the whole catalogue."""

DEFAULT_CALL_TIMEOUT: Final = 300.0
"""Seconds a tool call may take, as the bridge's --request-timeout."""

_TOP_KEYS: Final = ("prefix", "separator", "timeouts", "server", "targets")
_TIMEOUT_KEYS: Final = ("list", "call")
_SERVER_KEYS: Final = ("name", "instructions")
_TARGET_KEYS: Final = (
    "name",
    "url",
    "stdio",
    "openapi",
    "transport",
    "include",
    "exclude",
    "rename",
    "descriptions",
    "forward_headers",
    "timeouts",
)
_OPENAPI_KEYS: Final = ("spec", "base_url")
_TRANSPORTS: Final[tuple[Transport, ...]] = ("streamable-http", "sse")

_HEADER_NAME: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_NOT_FORWARDABLE: Final = frozenset(
    {
        # Hop-by-hop, or set by the aggregator itself on its own connection to the target.
        "accept",
        "connection",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
        "last-event-id",
        "mcp-protocol-version",
        "mcp-session-id",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_SAFE_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class AggregatorConfig:
    """Everything one aggregator configuration file says."""

    targets: Mapping[str, Target]
    prefix: PrefixMode = "always"
    separator: str = "_"
    list_timeout: float = DEFAULT_LIST_TIMEOUT
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    server_name: str = "plexus"
    instructions: str | None = None


def load_config(path: Path, allow_launch: bool = False) -> AggregatorConfig:
    """Read and validate the YAML file at `path`; `allow_launch` admits dev-mode `stdio` and `openapi` targets."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the aggregator config {path}: {exc.strerror}. Give a readable YAML file."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The aggregator config {path} is not UTF-8 text ({exc.reason}); save it as UTF-8.") from exc
    return parse_config(text, str(path), allow_launch)


def parse_config(text: str, source: str, allow_launch: bool = False) -> AggregatorConfig:
    """Validate YAML `text`; `source` names it in errors (usually the file's path)."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        place = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{place}: {exc.problem or exc}. Fix the YAML there.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc}). Fix the YAML syntax.") from exc
    if document is None:
        raise ConfigError(f"{source}: the file is empty. Give at least `targets:` (see examples/aggregator.yaml).")
    top = _mapping(document, source, _TOP_KEYS)
    prefix = top.get("prefix", "always")
    if prefix not in PREFIX_MODES:
        raise ConfigError(f"{source}: prefix must be one of {_listed(PREFIX_MODES)}, got {_show(prefix)}.")
    separator = top.get("separator", "_")
    if separator not in SEPARATORS:
        raise ConfigError(
            f"{source}: separator must be one of {_listed(SEPARATORS)} (characters target names cannot contain), "
            f"got {_show(separator)}."
        )
    timeouts = _mapping(top.get("timeouts", {}), f"{source}: timeouts", _TIMEOUT_KEYS)
    list_timeout = _seconds(timeouts.get("list", DEFAULT_LIST_TIMEOUT), f"{source}: timeouts.list")
    call_timeout = _seconds(timeouts.get("call", DEFAULT_CALL_TIMEOUT), f"{source}: timeouts.call")
    server = _mapping(top.get("server", {}), f"{source}: server", _SERVER_KEYS)
    server_name = server.get("name", "plexus")
    if not isinstance(server_name, str) or not server_name:
        raise ConfigError(f"{source}: server.name must be a non-empty string, got {_show(server_name)}.")
    instructions = server.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ConfigError(f"{source}: server.instructions must be text, got {_show(instructions)}.")
    if "targets" not in top:
        raise ConfigError(f"{source}: `targets` is missing. List the MCP servers to serve (`targets: []` for none).")
    entries = top["targets"]
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: targets must be a list of `- name: ...` entries, got {_show(entries)}.")
    targets: dict[str, Target] = {}
    for number, entry in enumerate(entries, start=1):
        target = parse_target(entry, f"{source}: target #{number}", allow_launch)
        if target.name in targets:
            raise ConfigError(
                f"{source}: target #{number}: the name {target.name!r} is already used by an earlier target. "
                "Give every target its own name."
            )
        targets[target.name] = target
    return AggregatorConfig(
        targets=targets,
        prefix=cast(PrefixMode, prefix),
        separator=separator,
        list_timeout=list_timeout,
        call_timeout=call_timeout,
        server_name=server_name,
        instructions=instructions,
    )


def parse_target(entry: object, where: str, allow_launch: bool = False) -> Target:
    """One `targets:` entry as a Target; `where` names it in errors. Discovery sources build entries too."""
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str):
        where = f"{where} ({name!r})"
    raw = _mapping(entry, where, _TARGET_KEYS)
    if "name" not in raw:
        raise ConfigError(f"{where}: `name` is missing. Give the target a name such as `name: github`.")
    if not isinstance(name, str) or not valid_target_name(name):
        raise ConfigError(
            f"{where}: name {_show(name)} is not a valid target name. Use lowercase letters, digits and '-' "
            f"(not first or last), at most {MAX_TARGET_NAME_LENGTH} characters, e.g. 'github' or 'web-search'."
        )
    kinds = [key for key in ("url", "stdio", "openapi") if key in raw]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where}: give exactly one of `url` (a running MCP server), `stdio` or `openapi` (dev mode), "
            f"got {_listed(kinds) if kinds else 'none'}."
        )
    url = ""
    launch: dict[str, Any] | None = None
    transport = raw.get("transport", "streamable-http")
    if "url" in raw:
        url = _http_url(raw["url"], f"{where}: url")
        if transport not in _TRANSPORTS:
            raise ConfigError(f"{where}: transport must be one of {_listed(_TRANSPORTS)}, got {_show(transport)}.")
    else:
        if not allow_launch:
            raise ConfigError(
                f"{where}: `{kinds[0]}` targets are started by the aggregator's dev mode only. Outside it, serve the "
                f"server with plexus-bridge and give the bridge's address as `url`."
            )
        if "transport" in raw:
            raise ConfigError(f"{where}: `transport` applies to `url` targets only; remove it.")
        launch = _stdio(raw["stdio"], where) if "stdio" in raw else _openapi(raw["openapi"], where)
    timeouts = _mapping(raw.get("timeouts", {}), f"{where}: timeouts", _TIMEOUT_KEYS)
    policy = TargetPolicy(
        include=_strings(raw.get("include", []), f"{where}: include"),
        exclude=_strings(raw.get("exclude", []), f"{where}: exclude"),
        rename=_rename(raw.get("rename", {}), f"{where}: rename"),
        descriptions=_text_mapping(raw.get("descriptions", {}), f"{where}: descriptions"),
        forward_headers=_headers(raw.get("forward_headers", []), f"{where}: forward_headers"),
        list_timeout=_seconds(timeouts["list"], f"{where}: timeouts.list") if "list" in timeouts else None,
        call_timeout=_seconds(timeouts["call"], f"{where}: timeouts.call") if "call" in timeouts else None,
    )
    return Target(name=name, url=url, transport=transport, policy=policy, launch=launch)


def _stdio(value: object, where: str) -> dict[str, Any]:
    command = _strings(value, f"{where}: stdio")
    if not command:
        raise ConfigError(f"{where}: stdio must be the server's command and arguments, e.g. [npx, -y, SERVER].")
    return {"stdio": list(command)}


def _openapi(value: object, where: str) -> dict[str, Any]:
    raw = _mapping(value, f"{where}: openapi", _OPENAPI_KEYS)
    spec = raw.get("spec")
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"{where}: openapi.spec must be a path or an http(s) URL of the document, got {_show(spec)}.")
    base_url = raw.get("base_url")
    if base_url is not None:
        base_url = _http_url(base_url, f"{where}: openapi.base_url")
    return {"openapi": {"spec": spec, "base_url": base_url}}


def _mapping(value: object, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping with the keys {_listed(allowed)}, got {_show(value)}.")
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {_listed(unknown)}; "
            f"allowed: {', '.join(allowed)}. Fix the spelling or remove it."
        )
    return value


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f'{where} must be a list of non-empty strings, e.g. ["get_*"], got {_show(value)}.')
    return tuple(value)


def _text_mapping(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where} must map upstream names to text, e.g. {{search: Find issues}}, got {_show(value)}.")
    return dict(value)


def _rename(value: object, where: str) -> dict[str, str]:
    renames = _text_mapping(value, where)
    seen: dict[str, str] = {}
    for upstream, exposed in renames.items():
        if not _SAFE_NAME.match(exposed):
            raise ConfigError(
                f"{where}: {upstream!r} is renamed to {exposed!r}; use only letters, digits, '_', '.' and '-', "
                "the characters every client accepts."
            )
        if exposed in seen:
            raise ConfigError(
                f"{where}: both {seen[exposed]!r} and {upstream!r} are renamed to {exposed!r}; give each its own name."
            )
        seen[exposed] = upstream
    return renames


def _headers(value: object, where: str) -> tuple[str, ...]:
    names: list[str] = []
    for name in _strings(value, where):
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"{where}: {name!r} is not an HTTP header name; give names such as Authorization.")
        if name.lower() in _NOT_FORWARDABLE:
            raise ConfigError(
                f"{where}: {name!r} cannot be forwarded (the aggregator sets it on its own connection); remove it."
            )
        if name.lower() not in names:
            names.append(name.lower())
    return tuple(names)


def _seconds(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where} must be a positive number of seconds, got {_show(value)}.")
    return float(value)


def _http_url(value: object, where: str) -> str:
    if isinstance(value, str):
        try:
            parts = urlsplit(value)
        except ValueError:  # a malformed host such as an unclosed IPv6 bracket
            parts = None
        if parts is not None and parts.scheme in ("http", "https") and parts.hostname:
            return value
    raise ConfigError(
        f"{where} must be an http:// or https:// URL (a bridge serves http://HOST:PORT/mcp), got {_show(value)}."
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listed(values: Iterable[object]) -> str:
    return ", ".join(repr(value) for value in values)


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping instead of keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue  # merged (`<<`) keys may be overridden; complex keys are refused by construct_mapping
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
