"""Swagger 2.0 to OpenAPI 3.0.3, offline.

Everything after loading works on OpenAPI 3.x, yet many APIs still publish Swagger 2.0. The usual converters call a
web service (prance) or need Node (swagger2openapi), so this module rewrites the document itself: servers from
`host`/`basePath`/`schemes`, shared definitions into `components`, body and form parameters into request bodies,
`consumes`/`produces` into media types, and every internal `$ref` to its new place.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote

from bridge.exceptions import SpecError

__all__ = ["convert"]

_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})
_LOCATIONS: Final = ("query", "header", "path", "formData", "body")
_SCHEMA_KEYS: Final = frozenset(
    {
        *("type", "format", "items", "default", "enum", "multipleOf", "x-nullable"),
        *("maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern"),
        *("maxItems", "minItems", "uniqueItems"),
    }
)
"""The keys of a 2.0 non-body parameter, header or items object that belong in its 3.0 `schema`."""
_COLLECTION_FORMATS: Final = ("csv", "ssv", "tsv", "pipes", "multi")
_FORM_STYLES: Final = {"multi": "form", "ssv": "spaceDelimited", "pipes": "pipeDelimited"}
"""The 3.0 styles of the 2.0 collection formats other than csv; they exist for query and form fields only."""
_FLOWS: Final = {
    "implicit": "implicit",
    "password": "password",
    "application": "clientCredentials",
    "accessCode": "authorizationCode",
}
_REF_SECTIONS: Final = {"definitions": "schemas", "parameters": "parameters", "responses": "responses"}
_OPERATION_KEYS: Final = frozenset({"tags", "summary", "description", "externalDocs", "operationId", "deprecated"})
"""Operation fields that mean the same in both versions."""
_JSON: Final = "application/json"
_FORM: Final = "application/x-www-form-urlencoded"
_MULTIPART: Final = "multipart/form-data"
_INVALID_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]")

_Param = tuple[str, Mapping[str, Any], Any, str]
"""A parameter of an operation: its location, the parameter object, the `$ref` it came through, its pointer."""


def convert(swagger: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a Swagger 2.0 document (dict) to an equivalent OpenAPI 3.0.3 document."""
    # `swagger: 2.0` without quotes reads as a float in YAML; it means the same.
    if not isinstance(swagger, Mapping) or str(swagger.get("swagger")) != "2.0":
        raise SpecError('not a Swagger 2.0 document: `swagger` must be "2.0"', "/swagger")
    return _Converter(swagger).document()


class _Converter:
    """One conversion: the source document and what moving its `$ref`s needs to know."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.params = _map(doc, "parameters", "")
        self.bodies = {name for name, p in self.params.items() if isinstance(p, Mapping) and p.get("in") == "body"}
        self.consumes = _seq(doc, "consumes", "") or [_JSON]
        self.produces = _seq(doc, "produces", "") or [_JSON]

    def document(self) -> dict[str, Any]:
        """The whole 3.0.3 document."""
        if "paths" not in self.doc:
            raise SpecError("Swagger 2.0 document has no `paths`", "/paths")
        out: dict[str, Any] = {"openapi": "3.0.3", **_copy(self.doc, ("info", "externalDocs"))}
        out["servers"] = self.servers(self.doc, "")
        if "security" in self.doc:
            out["security"] = _requirements(self.doc, "")
        out.update(_copy(self.doc, ("tags",)))
        out["paths"] = self.paths()
        if components := self.components():
            out["components"] = components
        return out | _extensions(self.doc)

    def servers(self, obj: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
        """The 3.0 servers for `obj["schemes"]` (the document's or an operation's) with the document's host."""
        host = self.doc.get("host")
        base = str(self.doc.get("basePath", "")).rstrip("/")
        if not host:
            return [{"url": base or "/"}]
        # Without `schemes`, 2.0 means the scheme the document was fetched with: unknown offline, so https.
        schemes = _seq(obj, "schemes", where) or _seq(self.doc, "schemes", "") or ["https"]
        return [{"url": f"{scheme}://{host}{base}"} for scheme in schemes]

    def components(self) -> dict[str, Any]:
        """`components` from the shared definitions, parameters, responses and security definitions."""
        parameters: dict[str, Any] = {}
        bodies: dict[str, Any] = {}
        for name, param, where in self.named("parameters"):
            location = _location(_mapping(param, where, "parameter"), where)
            if location == "body":
                bodies[name] = self.request_body(param, self.consumes, where)
            elif location != "formData":  # 3.0 has no form parameter: operations inline them into their form body
                parameters[name] = self.parameter(param, where)
        sections = {
            "schemas": {name: self.schema(s, where) for name, s, where in self.named("definitions")},
            "responses": {name: self.response(r, self.produces, where) for name, r, where in self.named("responses")},
            "parameters": parameters,
            "requestBodies": bodies,
            "securitySchemes": {name: _security(s, where) for name, s, where in self.named("securityDefinitions")},
        }
        return {section: entries for section, entries in sections.items() if entries}

    def named(self, section: str) -> Iterator[tuple[str, Any, str]]:
        """The entries of a shared section as (3.0 component name, value, pointer)."""
        seen: dict[str, str] = {}
        for name, value in _map(self.doc, section, "").items():
            where = _pointer("", section, name)
            key = _component_name(name)
            if seen.setdefault(key, name) != name:
                raise SpecError(f"Swagger 2.0 {section} {seen[key]!r} and {name!r} both become {key!r}", where)
            yield key, value, where

    def ref(self, ref: Any, where: str) -> str:
        """A 2.0 `$ref` pointed at its 3.0 place; pointers deeper into a definition keep their tail."""
        if not isinstance(ref, str):
            raise SpecError("Swagger 2.0 `$ref` must be a string", where)
        parts = ref.split("/")
        if len(parts) < 3 or parts[0] != "#" or parts[1] not in _REF_SECTIONS:
            return ref
        name = _unescape(unquote(parts[2]))
        section = "requestBodies" if parts[1] == "parameters" and name in self.bodies else _REF_SECTIONS[parts[1]]
        return "/".join(("#/components", section, _component_name(name), *parts[3:]))

    def schema(self, node: Any, where: str) -> Any:
        """A copy of a 2.0 schema in 3.0 terms: `$ref`s moved, `x-nullable`, discriminators and `file` rewritten."""
        if not isinstance(node, Mapping):
            return copy.deepcopy(node)  # `additionalProperties: true` and the like
        out: dict[str, Any] = {}
        for key, value in node.items():
            at = _pointer(where, key)
            if key == "$ref":
                out[key] = self.ref(value, at)
            elif key == "x-nullable":
                out["nullable"] = value
            elif key == "discriminator" and isinstance(value, str):
                out[key] = {"propertyName": value}
            elif key == "type" and value == "file":
                out.update(type="string", format="binary")
            elif key == "properties":
                properties = _mapping(value, at, "`properties`")
                out[key] = {name: self.schema(s, _pointer(at, name)) for name, s in properties.items()}
            elif key in ("items", "additionalProperties", "not"):
                out[key] = self.schema(value, at)
            elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
                out[key] = [self.schema(s, _pointer(at, i)) for i, s in enumerate(value)]
            else:
                out[key] = copy.deepcopy(value)
        return out

    def paths(self) -> dict[str, Any]:
        """The paths, each operation carrying its merged parameters."""
        out: dict[str, Any] = {}
        for path, item in _mapping(self.doc["paths"], "/paths", "`paths`").items():
            where = _pointer("/paths", path)
            if path.startswith("x-"):
                out[path] = copy.deepcopy(item)
                continue
            item = _mapping(item, where, "path item")
            operations = {
                method: self.operation(op, item, _pointer(where, method))
                for method, op in item.items()
                if method in _METHODS
            }
            out[path] = operations | _extensions(item)
        return out

    def operation(self, op: Any, item: Mapping[str, Any], where: str) -> dict[str, Any]:
        """One operation, carrying the path-level parameters it does not redefine."""
        op = _mapping(op, where, "operation")
        params = self.merged(op, item, where)
        out: dict[str, Any] = {key: copy.deepcopy(value) for key, value in op.items() if key in _OPERATION_KEYS}
        if "security" in op:
            out["security"] = _requirements(op, where)
        if "schemes" in op:
            out["servers"] = self.servers(op, where)
        if parameters := [
            {"$ref": self.ref(ref, at)} if ref else self.parameter(param, at)
            for location, param, ref, at in params
            if location not in ("body", "formData")
        ]:
            out["parameters"] = parameters
        if body := self.body(params, _seq(op, "consumes", where) or self.consumes, where):
            out["requestBody"] = body
        if "responses" not in op:
            raise SpecError("Swagger 2.0 operation has no `responses`", where)
        produces = _seq(op, "produces", where) or self.produces
        responses = _mapping(op["responses"], _pointer(where, "responses"), "`responses`")
        out["responses"] = {
            str(code): copy.deepcopy(r)
            if str(code).startswith("x-")
            else self.response(r, produces, _pointer(where, "responses", code))
            for code, r in responses.items()
        }
        return out | _extensions(op)

    def merged(self, op: Mapping[str, Any], item: Mapping[str, Any], where: str) -> list[_Param]:
        """Path-level then operation parameters, the operation's winning on the same name and location."""
        merged: dict[tuple[str, str], _Param] = {}
        for base, owner in ((where.rpartition("/")[0], item), (where, op)):
            for i, entry in enumerate(_seq(owner, "parameters", base)):
                at = _pointer(base, "parameters", i)
                param, ref = self.resolve(entry, at)
                location = _location(param, at)
                merged[location, _name(param, at)] = (location, param, ref, at)
        return list(merged.values())

    def body(self, params: list[_Param], consumes: list[str], where: str) -> dict[str, Any] | None:
        """The request body made of the body parameter or of the form parameters, if there are any."""
        bodies = [(param, ref, at) for location, param, ref, at in params if location == "body"]
        forms = [(param, at) for location, param, _, at in params if location == "formData"]
        if len(bodies) > 1 or (bodies and forms):
            raise SpecError("Swagger 2.0 operation has more than one body, or both body and formData parameters", where)
        if bodies:
            param, ref, at = bodies[0]
            return {"$ref": self.ref(ref, at)} if ref else self.request_body(param, consumes, at)
        return self.form_body(forms, consumes) if forms else None

    def resolve(self, entry: Any, where: str) -> tuple[Mapping[str, Any], Any]:
        """The parameter behind a parameter list entry, and the entry's `$ref` if it is one."""
        entry = _mapping(entry, where, "parameter")
        if "$ref" not in entry:
            return entry, None
        ref = entry["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/parameters/"):
            raise SpecError("Swagger 2.0 parameter `$ref` must point into #/parameters", _pointer(where, "$ref"))
        name = _unescape(unquote(ref.removeprefix("#/parameters/")))
        if name not in self.params:
            raise SpecError(f"Swagger 2.0 parameter `$ref` {ref!r} points to no parameter", _pointer(where, "$ref"))
        return _mapping(self.params[name], _pointer("", "parameters", name), "parameter"), ref

    def parameter(self, param: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A query, path or header parameter; its type moves into `schema`."""
        location = param["in"]
        out: dict[str, Any] = {"name": _name(param, where), "in": location, **_copy(param, ("description", "required"))}
        if location == "path":
            out["required"] = True  # 2.0 demands it as well, but some generators leave it out
        if location == "query":
            out.update(_copy(param, ("allowEmptyValue",)))
        return out | self.typed(param, location, where) | _extensions(param)

    def typed(self, obj: Mapping[str, Any], location: str, where: str) -> dict[str, Any]:
        """`schema` (and `style`/`explode` for arrays) of a non-body parameter or header."""
        if "type" not in obj:
            raise SpecError("Swagger 2.0 non-body parameter or header has no `type`", where)
        out = {"schema": self.schema(_items(obj), where)}
        if obj["type"] == "array":
            out.update(_style(obj.get("collectionFormat", "csv"), location, _pointer(where, "collectionFormat")))
        return out

    def request_body(self, param: Mapping[str, Any], consumes: list[str], where: str) -> dict[str, Any]:
        """The request body of a body parameter, one media type per `consumes` entry."""
        if "schema" not in param:
            raise SpecError("Swagger 2.0 body parameter has no `schema`", where)
        schema = self.schema(param["schema"], _pointer(where, "schema"))
        content = {media: {"schema": copy.deepcopy(schema)} for media in consumes}
        return _copy(param, ("description", "required")) | {"content": content} | _extensions(param)

    def form_body(self, params: list[tuple[Mapping[str, Any], str]], consumes: list[str]) -> dict[str, Any]:
        """One object-typed request body holding every formData parameter of an operation."""
        properties: dict[str, Any] = {}
        encoding: dict[str, Any] = {}
        required = [param["name"] for param, _ in params if param.get("required")]
        for param, where in params:
            typed = self.typed(param, "formData", where)
            properties[param["name"]] = typed.pop("schema") | _copy(param, ("description",))
            if typed:
                encoding[param["name"]] = typed
        multipart = _MULTIPART in consumes or any(param.get("type") == "file" for param, _ in params)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        media: dict[str, Any] = {"schema": schema}
        if encoding and not multipart:  # 3.0 applies `style` to urlencoded bodies only
            media["encoding"] = encoding
        body: dict[str, Any] = {"content": {_MULTIPART if multipart else _FORM: media}}
        if required:
            body["required"] = True
        return body

    def response(self, response: Any, produces: list[str], where: str) -> dict[str, Any]:
        """A response: `schema` and `examples` become `content`, headers get a `schema`."""
        response = _mapping(response, where, "response")
        if "$ref" in response:
            return {"$ref": self.ref(response["$ref"], _pointer(where, "$ref"))}
        out: dict[str, Any] = {"description": response.get("description", "")}
        headers = _map(response, "headers", where)
        if headers:
            out["headers"] = {
                name: _copy(header, ("description",)) | self.typed(header, "header", _pointer(where, "headers", name))
                for name, header in headers.items()
            }
        content: dict[str, Any] = {}
        if "schema" in response:
            schema = self.schema(response["schema"], _pointer(where, "schema"))
            content = {media: {"schema": copy.deepcopy(schema)} for media in produces}
        for media, example in _map(response, "examples", where).items():
            content.setdefault(media, {})["example"] = copy.deepcopy(example)
        if content:
            out["content"] = content
        return out | _extensions(response)


def _security(scheme: Any, where: str) -> dict[str, Any]:
    """A 3.0 security scheme for a 2.0 security definition."""
    scheme = _mapping(scheme, where, "security definition")
    kind = scheme.get("type")
    if kind == "basic":
        out: dict[str, Any] = {"type": "http", "scheme": "basic"}
    elif kind == "apiKey":
        out = _copy(scheme, ("type", "name", "in"))
    elif kind == "oauth2":
        flow = scheme.get("flow")
        if flow not in _FLOWS:
            raise SpecError(f"Swagger 2.0 oauth2 `flow` must be one of {', '.join(_FLOWS)}", _pointer(where, "flow"))
        details = _copy(scheme, ("authorizationUrl", "tokenUrl")) | {"scopes": copy.deepcopy(scheme.get("scopes", {}))}
        out = {"type": "oauth2", "flows": {_FLOWS[flow]: details}}
    else:
        raise SpecError("Swagger 2.0 security `type` must be basic, apiKey or oauth2", _pointer(where, "type"))
    return out | _copy(scheme, ("description",)) | _extensions(scheme)


def _requirements(obj: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """`obj["security"]`, naming the schemes by their 3.0 component names."""
    out = []
    for i, requirement in enumerate(_seq(obj, "security", where)):
        scopes = _mapping(requirement, _pointer(where, "security", i), "security requirement")
        out.append({_component_name(name): copy.deepcopy(scope) for name, scope in scopes.items()})
    return out


def _style(collection_format: Any, location: str, where: str) -> dict[str, Any]:
    """`style`/`explode` for a `collectionFormat`; one 3.0 cannot express stays csv, named in `x-collectionFormat`."""
    if collection_format not in _COLLECTION_FORMATS:
        raise SpecError(f"Swagger 2.0 `collectionFormat` must be one of {', '.join(_COLLECTION_FORMATS)}", where)
    form = location in ("query", "formData")
    csv: dict[str, Any] = {"style": "form" if form else "simple", "explode": False}
    if collection_format == "csv":
        return csv
    if form and collection_format in _FORM_STYLES:
        return {"style": _FORM_STYLES[collection_format], "explode": collection_format == "multi"}
    return csv | {"x-collectionFormat": collection_format}


def _items(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The schema keys of a parameter, header or items object; a nested `collectionFormat` has no 3.0 place."""
    schema = {key: value for key, value in obj.items() if key in _SCHEMA_KEYS}
    if isinstance(schema.get("items"), Mapping):
        schema["items"] = _items(schema["items"])
    return schema


def _location(param: Mapping[str, Any], where: str) -> str:
    """The checked `in` of a parameter."""
    if "in" not in param:
        raise SpecError("Swagger 2.0 parameter has no `in`", where)
    if param["in"] not in _LOCATIONS:
        raise SpecError(f"Swagger 2.0 parameter `in` must be one of {', '.join(_LOCATIONS)}", _pointer(where, "in"))
    return str(param["in"])


def _name(param: Mapping[str, Any], where: str) -> str:
    """The checked `name` of a parameter."""
    if not isinstance(param.get("name"), str):
        raise SpecError("Swagger 2.0 parameter has no `name`", where)
    return str(param["name"])


def _component_name(name: str) -> str:
    r"""A 3.0 component name (`^[a-zA-Z0-9\.\-_]+$`) for a 2.0 one; springfox writes names like `Page«Pet»`."""
    return _INVALID_NAME_CHARS.sub("_", name)


def _mapping(value: Any, where: str, what: str) -> Mapping[str, Any]:
    """`value`, checked to be an object."""
    if not isinstance(value, Mapping):
        raise SpecError(f"Swagger 2.0 {what} must be an object", where)
    return value


def _map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """`obj[key]` checked to be an object; empty when absent."""
    return _mapping(obj.get(key, {}), _pointer(where, key), f"`{key}`")


def _seq(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """`obj[key]` checked to be a list; empty when absent."""
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise SpecError(f"Swagger 2.0 `{key}` must be a list", _pointer(where, key))
    return value


def _copy(obj: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Copies of those of `keys` that `obj` has."""
    return {key: copy.deepcopy(obj[key]) for key in keys if key in obj}


def _extensions(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Copies of the `x-` fields of `obj`, but `x-nullable`, which becomes `nullable` in the schema."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if k.startswith("x-") and k not in _SCHEMA_KEYS}


def _pointer(base: str, *keys: object) -> str:
    """`base` extended by `keys`, escaped as RFC 6901 says."""
    return base + "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in keys)


def _unescape(segment: str) -> str:
    """An RFC 6901 pointer segment unescaped."""
    return segment.replace("~1", "/").replace("~0", "~")
