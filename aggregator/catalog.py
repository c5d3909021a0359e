"""What every target offers, cached, and the one merged view clients see.

Each target's tools, prompts, resources and resource templates are fetched whole (every page) when it connects and
again when it announces a change, so `tools/list` is answered from memory however many targets there are. The
merged view prefixes names (`<target><sep><name>`), rewrites resource URIs reversibly, applies each target's policy
(include, exclude, rename, descriptions) and remembers where each exposed name and URI leads. Without prefixes
(`never`, or `conditional` with one target) URIs stay as the target sent them and are routed by the listed resources,
then by the resource templates, then to the only target there is.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aggregator.discovery import TargetPolicy
from aggregator.naming import exposed_name, exposed_uri, original_uri

__all__ = ["KINDS", "Catalog", "Kind", "TargetLists"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One list an MCP server offers: the method that lists it, the result key, and the capability it needs."""

    method: str
    key: str
    capability: str


KINDS: Final = (
    Kind("tools/list", "tools", "tools"),
    Kind("prompts/list", "prompts", "prompts"),
    Kind("resources/list", "resources", "resources"),
    Kind("resources/templates/list", "resourceTemplates", "resources"),
)
"""The lists the aggregator caches and merges."""


@dataclass
class TargetLists:
    """A target's own lists, as it sent them."""

    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    instructions: str | None = None


@dataclass
class Catalog:
    """The merged, exposed lists and the routes back to their targets; rebuilt whenever any target's lists change."""

    lists: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {kind.key: [] for kind in KINDS})
    tools: dict[str, tuple[str, str]] = field(default_factory=dict)
    prompts: dict[str, tuple[str, str]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    prefix: bool = True
    targets: tuple[str, ...] = ()
    resources: dict[str, str] = field(default_factory=dict)
    """Without prefixes: each listed resource URI and the target that lists it."""
    templates: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    """Without prefixes: each resource template as a pattern, and its target."""

    @classmethod
    def build(
        cls,
        targets: Mapping[str, TargetLists],
        policies: Mapping[str, TargetPolicy],
        *,
        prefix: bool,
        separator: str,
    ) -> Catalog:
        catalog = cls(prefix=prefix, targets=tuple(sorted(targets)))
        for target in catalog.targets:
            lists, policy = targets[target], policies.get(target, TargetPolicy())
            for kind in KINDS:
                for item in lists.items.get(kind.key, ()):
                    catalog._add(kind.key, target, item, policy, prefix=prefix, separator=separator)
        for key, routes in (("tools", catalog.tools), ("prompts", catalog.prompts)):
            catalog.lists[key] = [item for item in catalog.lists[key] if routes[item["name"]][0]]
        return catalog

    def _add(
        self, key: str, target: str, item: dict[str, Any], policy: TargetPolicy, *, prefix: bool, separator: str
    ) -> None:
        if key in ("resources", "resourceTemplates"):
            uri_key = "uri" if key == "resources" else "uriTemplate"
            uri = item.get(uri_key)
            if not isinstance(uri, str):
                return
            if self.prefix:
                self.lists[key].append({**item, uri_key: exposed_uri(target, uri)})
            elif key == "resources":
                self.resources.setdefault(uri, target)
                self.lists[key].append(item)
            else:
                self.templates.append((_template_pattern(uri), target))
                self.lists[key].append(item)
            return
        name = item.get("name")
        if not isinstance(name, str) or not _selected(name, policy):
            return
        exposed = exposed_name(target, policy.rename.get(name, name), prefix=prefix, separator=separator)
        routes = self.tools if key == "tools" else self.prompts
        if exposed in routes:
            # Only without prefixes can two targets offer one name; neither is exposed, and the conflict is reported.
            owner = routes[exposed][0]
            self.conflicts.append(f"{key[:-1]} {exposed!r} is offered by both {owner!r} and {target!r}")
            logger.warning("Not exposing %s %r: both %r and %r offer it.", key[:-1], exposed, owner, target)
            routes[exposed] = ("", "")
            return
        routes[exposed] = (target, name)
        exposed_item = {**item, "name": exposed}
        if key == "tools" and name in policy.descriptions:
            exposed_item["description"] = policy.descriptions[name]
        self.lists[key].append(exposed_item)

    def exposed_uri(self, target: str, uri: str) -> str:
        """The URI clients see for `uri` of `target`."""
        return exposed_uri(target, uri) if self.prefix else uri

    def resource_route(self, uri: str) -> tuple[str, str] | None:
        """(target, the target's own URI) for a URI a client sent, or None when no target can own it."""
        if self.prefix:
            return original_uri(uri)
        owner = self.resources.get(uri)
        if owner is None:
            owner = next((target for pattern, target in self.templates if pattern.fullmatch(uri)), None)
        if owner is None and len(self.targets) == 1:
            owner = self.targets[0]
        return (owner, uri) if owner is not None else None

    def route(self, key: str, exposed: str) -> tuple[str, str] | None:
        routes = self.tools if key == "tools" else self.prompts
        found = routes.get(exposed)
        return found if found and found[0] else None


def _template_pattern(template: str) -> re.Pattern[str]:
    """A pattern matching the URIs an RFC 6570 template expands to: each `{...}` stands for any non-empty text."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile(".+?".join(re.escape(part) for part in parts), re.S)


def _selected(name: str, policy: TargetPolicy) -> bool:
    if policy.include and not any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.include):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.exclude)
