"""OpenAPI schemas turned into the self-contained JSON Schemas (2020-12) that MCP tools carry.

An MCP client validates a tool's `inputSchema` and `outputSchema` on its own, with no OpenAPI document around, so
every schema must stand alone: the component schemas it references travel with it under `$defs`, and OpenAPI's own
keywords become their JSON Schema equivalents. Refs are rewritten, never followed, so recursive components stay
finite; deep refs (`#/components/schemas/X/properties/p`) keep pointing at the same schema; regex `pattern`s are
copied untouched (they are ECMA-262, as JSON Schema expects).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, unquote

from bridge.exceptions import SpecError

__all__ = ["SchemaBundler", "to_json_schema"]

_COMPONENTS = "#/components/schemas/"
_SCHEMA = frozenset({
    "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
    "unevaluatedItems", "unevaluatedProperties", "contentSchema",
})  # fmt: skip
"""Keywords whose value is one schema."""
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
"""Keywords whose value is a list of schemas."""
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
"""Keywords whose value maps names to schemas."""
_DROPPED = frozenset({"discriminator", "xml", "externalDocs"})
"""OpenAPI-only keywords with no JSON Schema meaning."""
_APPLICATORS = ("$ref", "allOf", "anyOf", "oneOf", "not")
"""Keywords that reject null whatever `type` says, so a nullable schema using them must be wrapped."""
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly")
"""Keywords lifted from a wrapped nullable schema onto the wrapper, where clients look for them."""
_FRAGMENT_SAFE = "!$&'()*+,;=:@/?"
"""Characters a URI fragment may hold unencoded, besides letters, digits and `-._~`."""


def to_json_schema(schema: Any, dialect: Literal["3.0", "3.1"]) -> Any:
    """Convert one OpenAPI Schema Object tree to JSON Schema 2020-12, as a new object.

    Refs are not resolved; only their `#/components/schemas/` prefix becomes `#/$defs/` (a deep ref crossing a
    wrapped 3.0 nullable schema needs `SchemaBundler`, which also fixes its path).
    """
    return _Converter(dialect).convert(schema, "")


class SchemaBundler:
    """Turns OpenAPI schemas of one document into self-contained JSON Schemas, with referenced components as $defs."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        """Read the dialect (`openapi` 3.0.x or later) and the component schemas of `document`, refs unresolved."""
        version = str(document.get("openapi", ""))
        if not version.startswith("3."):
            raise SpecError(f"openapi version {version!r} is not 3.x", "/openapi")
        self._dialect: Literal["3.0", "3.1"] = "3.0" if version.startswith("3.0") else "3.1"
        components = document.get("components") or {}
        self._schemas: Mapping[str, Any] = components.get("schemas") or {}

    def bundle(self, schema: Any, pointer: str = "") -> dict[str, Any]:
        """Return `schema` as a new JSON Schema whose top-level `$defs` holds exactly the components it reaches.

        Refs become `#/$defs/Name[/deep/path]`. A bare `{"$ref": ...}` comes back as `{"$ref": ..., "$defs": ...}`,
        not inlined; a boolean schema as `{}` or `{"not": {}}`. `pointer` says where `schema` sits in the document;
        a SpecError for a missing or unsupported ref names the ref and where it was met.
        """
        converter = _Converter(self._dialect)
        root = converter.convert(schema, pointer)
        if isinstance(root, bool):
            root = {} if root else {"not": {}}
        if not isinstance(root, dict):
            raise SpecError("a schema must be an object or a boolean", pointer)
        defs: dict[str, Any] = {}
        targets: list[tuple[dict[str, Any], str, str, str, list[str]]] = []
        index = 0
        while index < len(converter.refs):  # grows while reached components are converted
            node, ref, where = converter.refs[index]
            index += 1
            name, rest = self._target(ref, where)
            if name not in defs:
                defs[name] = converter.convert(self._schemas[name], "/components/schemas/" + _escape(name))
            targets.append((node, ref, where, name, rest))
        for node, ref, where, name, rest in targets:
            path = _locate(defs[name], rest, converter.wrappers)
            if path is None:
                raise SpecError(f"$ref {ref!r} does not point to a schema", where)
            node["$ref"] = "#/$defs/" + "/".join(quote(_escape(part), safe=_FRAGMENT_SAFE) for part in [name, *path])
        if defs:
            own = root.setdefault("$defs", {})
            if clash := sorted(own.keys() & defs.keys()):
                raise SpecError(f"$defs {clash[0]!r} of the schema has the name of a component it references", pointer)
            own.update(defs)
        return root

    def _target(self, ref: str, where: str) -> tuple[str, list[str]]:
        """The component name and the path inside it that `ref` points to; SpecError unless it is a component's."""
        parts = [_unescape(part) for part in unquote(ref[2:]).split("/")] if ref.startswith("#/") else []
        if len(parts) < 3 or parts[:2] != ["components", "schemas"]:
            raise SpecError(f"$ref {ref!r} does not point into #/components/schemas, the only place refs may go", where)
        if parts[2] not in self._schemas:
            raise SpecError(f"$ref {ref!r} names a component schema that does not exist", where)
        return parts[2], parts[3:]


class _Converter:
    """One conversion, remembering every ref met and every nullable wrapper made, for `SchemaBundler`."""

    def __init__(self, dialect: Literal["3.0", "3.1"]) -> None:
        self.dialect = dialect
        self.refs: list[tuple[dict[str, Any], str, str]] = []
        """(node holding the `$ref`, the ref as written, where it was met)."""
        self.wrappers: set[int] = set()
        """`id`s of the `anyOf` wrappers added for 3.0 nullable schemas: deep refs step into them."""
        self._base = ""
        self._path: list[str] = []

    def convert(self, schema: Any, pointer: str) -> Any:
        """Convert `schema`, which sits at `pointer` in the document."""
        self._base, self._path = pointer, []
        return self._node(schema)

    def _child(self, part: str, schema: Any) -> Any:
        """Convert a nested schema, one path segment further down."""
        self._path.append(part)
        converted = self._node(schema)
        self._path.pop()
        return converted

    def _node(self, schema: Any) -> Any:
        """Convert one schema node and everything under it."""
        if not isinstance(schema, Mapping):
            return copy.deepcopy(schema)  # a boolean schema, or not a schema: nothing to convert
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _DROPPED or key.startswith("x-"):
                continue
            if key in _SCHEMA:
                out[key] = self._child(key, value)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self._child(f"{key}/{i}", item) for i, item in enumerate(value)]
            elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
                out[key] = {name: self._child(f"{key}/{_escape(name)}", item) for name, item in value.items()}
            elif key == "example":
                if "examples" not in schema:
                    out["examples"] = [copy.deepcopy(value)]
            else:
                out[key] = copy.deepcopy(value)
        ref = out.get("$ref")
        if isinstance(ref, str):
            out["$ref"] = "#/$defs/" + ref.removeprefix(_COMPONENTS) if ref.startswith(_COMPONENTS) else ref
            self.refs.append((out, ref, self._base + "".join("/" + part for part in self._path)))
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = out.get(exclusive)
            if isinstance(flag, bool):  # OpenAPI 3.0's form: a flag on `minimum`/`maximum`
                del out[exclusive]
                if flag and bound in out:
                    out[exclusive] = out.pop(bound)
        if self.dialect == "3.0" and out.pop("nullable", False) is True:
            return self._nullable(out)
        return out

    def _nullable(self, out: dict[str, Any]) -> dict[str, Any]:
        """Let a converted 3.0 schema also accept null: through `type` and `enum`, or else by wrapping it."""
        kind = out.get("type")
        if kind is not None and not any(key in out for key in _APPLICATORS):
            types = kind if isinstance(kind, list) else [kind]
            out["type"] = types if "null" in types else [*types, "null"]
            enum = out.get("enum")
            if isinstance(enum, list) and None not in enum:
                out["enum"] = [*enum, None]
            return out
        wrapper = {key: out.pop(key) for key in _ANNOTATIONS if key in out}
        wrapper["anyOf"] = [out, {"type": "null"}]
        self.wrappers.add(id(wrapper))
        return wrapper


def _locate(schema: Any, parts: list[str], wrappers: set[int]) -> list[str] | None:
    """The path in converted `schema` of the original path `parts`, through nullable wrappers; None unless a schema."""
    path: list[str] = []
    remaining = iter(parts)
    for keyword in remaining:
        if isinstance(schema, dict) and id(schema) in wrappers:  # the original schema is the wrapper's first branch
            path += ["anyOf", "0"]
            schema = schema["anyOf"][0]
        if not isinstance(schema, dict) or keyword not in schema:
            return None
        schema = schema[keyword]
        path.append(keyword)
        if keyword in _SCHEMA_LISTS or keyword in _SCHEMA_MAPS:
            member = next(remaining, None)
            if member is None:
                return None
            if isinstance(schema, list) and member.isdigit() and int(member) < len(schema):
                schema = schema[int(member)]
            elif isinstance(schema, dict) and member in schema:
                schema = schema[member]
            else:
                return None
            path.append(member)
        elif keyword not in _SCHEMA:
            return None
    return path if isinstance(schema, dict | bool) else None


def _escape(part: str) -> str:
    """One JSON pointer segment (RFC 6901)."""
    return part.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    """The name a JSON pointer segment stands for (RFC 6901)."""
    return part.replace("~1", "/").replace("~0", "~")
