"""One MCP tool per OpenAPI operation: its name, description, annotations, input and output schemas, and the map from
tool arguments back to the HTTP request.

Arguments are flat: each parameter is an argument named like the parameter, and a JSON or form body whose schema is
an object contributes its properties too. Collisions are renamed deterministically: path parameters keep their
names, then query, header and cookie parameters (a taken name becomes `<in>_<name>`), then body properties (a
taken name becomes `body_<name>`). A body that is not an object is one argument, `body`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.exceptions import SpecError
from bridge.openapi.naming import tool_names
from bridge.openapi.schemas import SchemaBundler

__all__ = ["Body", "Operation", "Parameter", "Selector", "build_operations"]

HTTP_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS: Final = ("path", "query", "header", "cookie")
HEADER_SAFE: Final = "^[\\t\\u0020-\\u007e]*$"
"""What an HTTP header value carries portably: visible ASCII, space and tab (a pattern: only strings are held)."""
JSON_TYPES: Final = ("application/json",)
FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")

_ANNOTATIONS: Final[Mapping[str, dict[str, bool]]] = {
    "get": {"readOnlyHint": True},
    "head": {"readOnlyHint": True},
    "options": {"readOnlyHint": True},
    "put": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True},
    "delete": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True},
    "post": {"readOnlyHint": False, "destructiveHint": False},
    "patch": {"readOnlyHint": False, "destructiveHint": False},
}
"""What each HTTP method promises, as MCP tool annotations."""


@dataclass(frozen=True)
class Parameter:
    """A path, query, header or cookie parameter, and the argument that carries it."""

    name: str
    location: str
    argument: str
    style: str
    explode: bool


@dataclass(frozen=True)
class Body:
    """The request body: one argument, or object properties spread over several (`fields`: argument → property)."""

    media_type: str
    argument: str | None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """Everything needed to list an operation as a tool and to call it."""

    tool: dict[str, Any]
    method: str
    path: str
    operation_id: str | None
    tags: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    body: Body | None
    security: tuple[Mapping[str, list[str]], ...]
    wraps_result: bool
    """The 2xx body is not an object, so structured content carries it as `{"result": ...}`."""


@dataclass(frozen=True)
class Selector:
    """One `--include`/`--exclude` rule: `tag:NAME`, `op:OPERATION_ID`, `path:GLOB` or `method:METHOD` (globs)."""

    kind: str
    pattern: str

    @classmethod
    def parse(cls, text: str) -> Selector:
        kind, sep, pattern = text.partition(":")
        if not sep or kind not in ("tag", "op", "path", "method") or not pattern:
            raise SpecError(
                f"Filter {text!r} is not one of tag:NAME, op:OPERATION_ID, path:GLOB, method:METHOD (globs allowed)"
            )
        return cls(kind, pattern)

    def matches(self, method: str, path: str, operation: Mapping[str, Any]) -> bool:
        if self.kind == "method":
            return fnmatch.fnmatchcase(method.upper(), self.pattern.upper())
        if self.kind == "path":
            return fnmatch.fnmatchcase(path, self.pattern)
        if self.kind == "op":
            return fnmatch.fnmatchcase(str(operation.get("operationId", "")), self.pattern)
        return any(fnmatch.fnmatchcase(str(tag), self.pattern) for tag in operation.get("tags") or ())


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


class _Builder:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.components: Mapping[str, Any] = document.get("components") or {}
        self.bundler = SchemaBundler(document)

    def deref(self, item: Any, section: str, pointer: str) -> Any:
        """Follow a `$ref` into `#/components/<section>/` (parameters, request bodies, responses)."""
        seen: set[str] = set()
        while isinstance(item, dict) and "$ref" in item:
            ref = str(item["$ref"])
            prefix = f"#/components/{section}/"
            if not ref.startswith(prefix) or ref in seen:
                raise SpecError(f"$ref {ref!r} must point into #/components/{section}/ (without a cycle)", pointer)
            seen.add(ref)
            item = (self.components.get(section) or {}).get(ref[len(prefix) :].replace("~1", "/").replace("~0", "~"))
            if item is None:
                raise SpecError(f"$ref {ref!r} points to nothing", pointer)
        return item

    def component_schema(self, schema: Any, pointer: str) -> tuple[Any, str]:
        """A schema with a top-level component `$ref` followed (only to see its shape), and where that shape is."""
        seen: set[str] = set()
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if not ref.startswith("#/components/schemas/") or ref in seen or ref.count("/") != 3:
                return schema, pointer
            seen.add(ref)
            schemas = self.components.get("schemas") or {}
            name = ref.rsplit("/", 1)[1].replace("~1", "/").replace("~0", "~")
            if name not in schemas:
                return schema, pointer
            schema, pointer = schemas[name], ref[1:]
        return schema, pointer

    def bundle(self, root: dict[str, Any], pointer: str, origins: Mapping[str, str]) -> dict[str, Any]:
        """Bundle a schema assembled from pieces of the document; an error points at the piece's own place."""
        try:
            return self.bundler.bundle(root, pointer)
        except SpecError as exc:
            for piece, origin in origins.items():
                at = pointer + piece
                if exc.pointer == at or exc.pointer.startswith(at + "/"):
                    raise SpecError(exc.detail, origin + exc.pointer[len(at) :]) from exc
            raise

    def operation(self, name: str, method: str, path: str, item: Mapping[str, Any], op: Mapping[str, Any]) -> Operation:
        pointer = f"/paths/{_escape(path)}/{method}"
        properties: dict[str, Any] = {}
        required: list[str] = []
        origins: dict[str, str] = {}
        parameters: list[Parameter] = []
        declared: dict[tuple[str, str], tuple[Any, str]] = {}
        for where, source in ((f"/paths/{_escape(path)}/parameters", item), (pointer + "/parameters", op)):
            for index, raw in enumerate(source.get("parameters") or ()):
                param = self.deref(raw, "parameters", f"{where}/{index}")
                if not isinstance(param, dict) or "name" not in param or param.get("in") not in LOCATIONS:
                    raise SpecError(
                        "a parameter needs a 'name' and 'in' (path, query, header or cookie)", f"{where}/{index}"
                    )
                declared[(param["in"], str(param["name"]))] = (param, f"{where}/{index}")
        for location in LOCATIONS:
            for (where_in, param_name), (param, at) in declared.items():
                if where_in != location:
                    continue
                argument = param_name if param_name not in properties else f"{location}_{param_name}"
                argument = _unique(argument, properties)
                schema = self.parameter_schema(param, at)
                if location == "path" or (
                    location == "query" and param.get("required") and not param.get("allowEmptyValue")
                ):
                    # An empty value is a missing one on the wire (`/users//keys`, `?q=`): refuse it up front.
                    # A path segment of `.` or `..` would address another path however it is encoded.
                    schema = _refusing(schema, ["", ".", ".."] if location == "path" else [""])
                if location == "header":
                    # HTTP cannot carry control characters in a header; say so in the schema, not after the call.
                    schema = (
                        {"allOf": [schema], "pattern": HEADER_SAFE}
                        if "pattern" in schema
                        else {**schema, "pattern": HEADER_SAFE}
                    )
                properties[argument] = schema
                origins[f"/properties/{_escape(argument)}/allOf/0"] = at + ("/schema" if "schema" in param else "")
                origins[f"/properties/{_escape(argument)}"] = at + ("/schema" if "schema" in param else "")
                if param.get("required") or location == "path":
                    required.append(argument)
                style = param.get("style") or ("form" if location in ("query", "cookie") else "simple")
                parameters.append(
                    Parameter(param_name, location, argument, style, param.get("explode", style == "form"))
                )
        body = self.body(op, pointer, properties, required, origins)
        description = op.get("description") or op.get("summary") or f"{method.upper()} {path}"
        if op.get("deprecated"):
            description = "Deprecated. " + description
        input_schema = self.bundle({"type": "object", "properties": properties, "required": required}, pointer, origins)
        if not required:
            input_schema.pop("required", None)
        tool: dict[str, Any] = {"name": name, "description": description, "inputSchema": input_schema}
        if op.get("summary"):
            tool["title"] = op["summary"]
        tool["annotations"] = {**_ANNOTATIONS.get(method, {}), "openWorldHint": True}
        output, wraps = self.output_schema(op, pointer)
        if output is not None:
            tool["outputSchema"] = output
        security = op.get("security", self.document.get("security")) or ()
        return Operation(
            tool=tool,
            method=method.upper(),
            path=path,
            operation_id=op.get("operationId"),
            tags=tuple(str(tag) for tag in op.get("tags") or ()),
            parameters=tuple(parameters),
            body=body,
            security=tuple(security),
            wraps_result=wraps,
        )

    def parameter_schema(self, param: Mapping[str, Any], pointer: str) -> Any:
        schema: Any = param.get("schema")
        if schema is None:
            content: Mapping[str, Any] = param.get("content") or {}
            first: Mapping[str, Any] = next(iter(content.values()), {}) or {}
            schema = first.get("schema")
        schema = dict(schema) if isinstance(schema, dict) else {}
        if param.get("description") and "$ref" not in schema:
            schema.setdefault("description", param["description"])
        elif param.get("description"):
            schema = {"allOf": [schema], "description": param["description"]}
        if param.get("deprecated"):
            schema["deprecated"] = True
        return schema

    def body(
        self,
        op: Mapping[str, Any],
        pointer: str,
        properties: dict[str, Any],
        required: list[str],
        origins: dict[str, str],
    ) -> Body | None:
        raw = op.get("requestBody")
        if raw is None:
            return None
        request_body = self.deref(raw, "requestBodies", pointer + "/requestBody")
        content: Mapping[str, Any] = request_body.get("content") or {}
        if not content:
            return None
        media_type = _preferred(content)
        schema = (content[media_type] or {}).get("schema") or {}
        at = f"{pointer}/requestBody/content/{_escape(media_type)}/schema"
        shape, shape_at = self.component_schema(schema, at)
        structured = media_type in FORM_TYPES or _is_json(media_type)
        plain_object = (
            isinstance(shape, dict)
            and shape.get("type", "object") == "object"
            and bool(shape.get("properties"))
            and not any(key in shape for key in ("allOf", "anyOf", "oneOf", "not", "nullable"))
        )
        # Only a plain object spreads into arguments: alternatives (anyOf, oneOf) would be lost in the spreading.
        if structured and plain_object:
            own_required = set(shape.get("required") or ())
            fields: dict[str, str] = {}
            for prop, prop_schema in shape["properties"].items():
                argument = _unique(prop if prop not in properties else f"body_{prop}", properties)
                properties[argument] = prop_schema
                origins[f"/properties/{_escape(argument)}"] = f"{shape_at}/properties/{_escape(prop)}"
                fields[argument] = prop
                if request_body.get("required") and prop in own_required:
                    required.append(argument)
            return Body(media_type, None, fields)
        argument = _unique("body", properties)
        origins[f"/properties/{argument}"] = at
        if request_body.get("required"):
            # A required body cannot be null: the request would go out without one.
            schema = {"allOf": [schema], "not": {"type": "null"}}
            required.append(argument)
        properties[argument] = schema
        return Body(media_type, argument)

    def output_schema(self, op: Mapping[str, Any], pointer: str) -> tuple[dict[str, Any] | None, bool]:
        # YAML reads an unquoted `200:` as an integer key.
        responses = {str(code): response for code, response in (op.get("responses") or {}).items()}
        for code in sorted(responses):
            if not (code.startswith("2") and len(code) == 3):
                continue
            response = self.deref(responses[code], "responses", pointer)
            content = (response or {}).get("content") or {}
            json_type = next((t for t in content if _is_json(t)), None)
            if json_type is None:
                return None, False
            schema = (content[json_type] or {}).get("schema")
            if schema is None:
                return None, False
            at = f"{pointer}/responses/{code}/content/{_escape(json_type)}/schema"
            shape, _ = self.component_schema(schema, at)
            if isinstance(shape, dict) and shape.get("type") == "object" and not shape.get("nullable"):
                bundled = self.bundler.bundle(schema, at)
                bundled.setdefault("type", "object")  # MCP wants it at the top, even beside a `$ref`
                return bundled, False
            wrapper = {"type": "object", "properties": {"result": schema}}
            return self.bundle(wrapper, at, {"/properties/result": at}), True
        return None, False


def _refusing(schema: dict[str, Any], values: list[str]) -> dict[str, Any]:
    """The schema, refusing `values`: a `not` beside a plain schema, else around it (keeping its description)."""
    if "not" not in schema and not any(key in schema for key in ("$ref", "allOf", "anyOf", "oneOf")):
        return {**schema, "not": {"enum": values}}
    wrapped: dict[str, Any] = {"allOf": [schema], "not": {"enum": values}}
    if "description" in schema:
        wrapped["description"] = schema["description"]
    return wrapped


def _unique(argument: str, taken: Mapping[str, Any]) -> str:
    candidate, number = argument, 2
    while candidate in taken:
        candidate, number = f"{argument}_{number}", number + 1
    return candidate


def _is_json(media_type: str) -> bool:
    base = media_type.split(";", 1)[0].strip().lower()
    return base in JSON_TYPES or base.endswith("+json")


def _preferred(content: Mapping[str, Any]) -> str:
    """JSON first, then forms, then whatever the spec lists first."""
    for media_type in content:
        if _is_json(media_type):
            return media_type
    for media_type in content:
        if media_type.split(";", 1)[0].strip().lower() in FORM_TYPES:
            return media_type
    return next(iter(content))


def build_operations(
    document: Mapping[str, Any],
    *,
    include: Iterable[Selector] = (),
    exclude: Iterable[Selector] = (),
) -> list[Operation]:
    """Every operation of the document that the filters keep, as tools with unique names."""
    include, exclude = list(include), list(exclude)
    selected: list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]] = []
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            raise SpecError("a path item must be an object", f"/paths/{_escape(str(path))}")
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            if include and not any(s.matches(method, path, op) for s in include):
                continue
            if any(s.matches(method, path, op) for s in exclude):
                continue
            selected.append((method, str(path), item, op))
    names = tool_names((op.get("operationId"), method, path) for method, path, _, op in selected)
    builder = _Builder(document)
    return [
        builder.operation(name, method, path, item, op)
        for name, (method, path, item, op) in zip(names, selected, strict=True)
    ]
