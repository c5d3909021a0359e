"""Swagger 2.0 documents convert to OpenAPI 3.0.3 offline, each 2.0 construct landing where 3.0 puts it."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from bridge.exceptions import SpecError
from bridge.openapi.swagger2 import convert

PETSTORE = Path(__file__).resolve().parents[2] / "fixtures" / "specs" / "petstore-swagger2.yaml"
OK = {"200": {"description": "ok"}}


def _doc(**fields: Any) -> dict[str, Any]:
    """A minimal Swagger 2.0 document with `fields` added."""
    return {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}} | fields


def _with_operation(operation: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A document whose only operation is `get /pets/{id}`."""
    return _doc(paths={"/pets/{id}": {"get": {"responses": OK} | operation}}, **fields)


def _operation(swagger: dict[str, Any]) -> dict[str, Any]:
    """The converted `get /pets/{id}` operation."""
    operation: dict[str, Any] = convert(swagger)["paths"]["/pets/{id}"]["get"]
    return operation


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    """The converted form of one operation parameter."""
    converted: dict[str, Any] = _operation(_with_operation({"parameters": [param]}))["parameters"][0]
    return converted


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` value anywhere under `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    """The node an internal `$ref` points to."""
    node: Any = doc
    for segment in ref.removeprefix("#/").split("/"):
        node = node[segment.replace("~1", "/").replace("~0", "~")]
    return node


def test_rejects_a_document_that_is_not_swagger_2() -> None:
    """An OpenAPI 3 document, or none at all, is not taken for Swagger 2.0."""
    for document in ({"openapi": "3.0.3", "paths": {}}, {"swagger": "1.2", "paths": {}}):
        with pytest.raises(SpecError, match=r"Swagger 2\.0") as caught:
            convert(document)
        assert caught.value.pointer == "/swagger"


def test_accepts_the_version_as_an_unquoted_yaml_number() -> None:
    """`swagger: 2.0` without quotes loads as a float and still means Swagger 2.0."""
    assert convert(_doc(swagger=2.0))["openapi"] == "3.0.3"


def test_rejects_a_document_without_paths() -> None:
    """`paths` is required in Swagger 2.0."""
    document = _doc()
    del document["paths"]
    with pytest.raises(SpecError, match=r"Swagger 2\.0 document has no `paths`") as caught:
        convert(document)
    assert caught.value.pointer == "/paths"


def test_never_mutates_or_shares_the_input() -> None:
    """The input is left as it was, and changing the output cannot reach it."""
    swagger = yaml.safe_load(PETSTORE.read_text())
    before = copy.deepcopy(swagger)
    converted = convert(swagger)
    assert swagger == before
    converted["components"]["schemas"]["Pet"]["properties"]["name"]["example"] = "cat"
    converted["info"]["title"] = "changed"
    assert swagger == before


def test_keeps_the_fields_both_versions_share() -> None:
    """info, tags, externalDocs, security, extensions and the operation's descriptive fields pass through."""
    shared = {
        "tags": [{"name": "pets", "description": "Pets"}],
        "externalDocs": {"url": "https://example.com"},
        "security": [{"key": []}],
        "x-top": {"a": 1},
    }
    operation = {
        "operationId": "getPet",
        "summary": "Get",
        "description": "Gets a pet",
        "deprecated": True,
        "tags": ["pets"],
        "security": [],
        "x-op": 1,
    }
    swagger = _doc(paths={"/pets": {"get": {"responses": OK} | operation, "x-item": 2}}, **shared)
    converted = convert(swagger)
    assert converted["info"] == swagger["info"]
    assert {key: converted[key] for key in shared} == shared
    assert converted["paths"]["/pets"]["x-item"] == 2
    assert converted["paths"]["/pets"]["get"] == {"responses": OK} | operation
    assert not {"swagger", "host", "basePath", "schemes", "consumes", "produces", "definitions"} & converted.keys()


def test_servers_come_from_host_base_path_and_each_scheme() -> None:
    """Each scheme gives a server on the same host and base path."""
    converted = convert(_doc(host="api.example.com:8443", basePath="/v1/", schemes=["https", "http"]))
    assert converted["servers"] == [
        {"url": "https://api.example.com:8443/v1"},
        {"url": "http://api.example.com:8443/v1"},
    ]


def test_server_defaults_to_https_without_schemes() -> None:
    """With no `schemes` the server is https, the fetch scheme being unknown offline."""
    assert convert(_doc(host="api.example.com"))["servers"] == [{"url": "https://api.example.com"}]


def test_server_is_relative_without_host() -> None:
    """Without `host` the server is the base path, relative to wherever the document came from."""
    assert convert(_doc(basePath="/v2", schemes=["http"]))["servers"] == [{"url": "/v2"}]
    assert convert(_doc())["servers"] == [{"url": "/"}]


def test_operation_schemes_become_operation_servers() -> None:
    """An operation's own `schemes` give it its own servers on the document's host."""
    swagger = _with_operation({"schemes": ["wss"]}, host="h.example", basePath="/b", schemes=["https"])
    assert _operation(swagger)["servers"] == [{"url": "wss://h.example/b"}]


def test_definitions_become_component_schemas_and_refs_follow() -> None:
    """`#/definitions/X` becomes `#/components/schemas/X`, pointers deeper into X keep their tail."""
    swagger = _doc(
        definitions={
            "Pet": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "owner": {"$ref": "#/definitions/User"}},
            },
            "User": {"type": "object", "properties": {"petId": {"$ref": "#/definitions/Pet/properties/id"}}},
            "Pets": {"type": "array", "items": {"$ref": "#/definitions/Pet"}},
            "Dog": {"allOf": [{"$ref": "#/definitions/Pet"}], "additionalProperties": {"$ref": "#/definitions/User"}},
        }
    )
    schemas = convert(swagger)["components"]["schemas"]
    assert schemas["Pet"]["properties"]["owner"] == {"$ref": "#/components/schemas/User"}
    assert schemas["User"]["properties"]["petId"] == {"$ref": "#/components/schemas/Pet/properties/id"}
    assert schemas["Pets"]["items"] == {"$ref": "#/components/schemas/Pet"}
    assert schemas["Dog"] == {
        "allOf": [{"$ref": "#/components/schemas/Pet"}],
        "additionalProperties": {"$ref": "#/components/schemas/User"},
    }


def test_schema_dialect_differences_are_rewritten() -> None:
    """`x-nullable` becomes `nullable`, a string discriminator an object, `type: file` a binary string."""
    swagger = _with_operation(
        {"responses": {"200": {"description": "a file", "schema": {"type": "file"}}}},
        definitions={
            "Pet": {
                "type": "object",
                "discriminator": "kind",
                "properties": {"name": {"type": "string", "x-nullable": True}},
            }
        },
    )
    converted = convert(swagger)
    pet = converted["components"]["schemas"]["Pet"]
    assert pet["discriminator"] == {"propertyName": "kind"}
    assert pet["properties"]["name"] == {"type": "string", "nullable": True}
    content = converted["paths"]["/pets/{id}"]["get"]["responses"]["200"]["content"]
    assert content == {"application/json": {"schema": {"type": "string", "format": "binary"}}}


def test_other_refs_extensions_and_boolean_schemas_stay_as_they_are() -> None:
    """Refs outside the moved sections, `x-` entries of `paths` and `additionalProperties: true` are kept."""
    swagger = _doc(
        paths={"x-generated": {"by": "tool"}},
        definitions={"Bag": {"additionalProperties": True, "properties": {"more": {"$ref": "#/x-shared/More"}}}},
    )
    converted = convert(swagger)
    assert converted["paths"] == {"x-generated": {"by": "tool"}}
    assert converted["components"]["schemas"]["Bag"] == swagger["definitions"]["Bag"]


def test_component_names_are_made_valid_for_openapi_3() -> None:
    """Names 3.0 forbids (springfox's `Page«Pet»`) get `_` for each bad character, in refs and requirements too."""
    swagger = _doc(
        definitions={"Page«Pet»": {"type": "object"}, "Holder": {"$ref": "#/definitions/Page%C2%ABPet%C2%BB"}},
        securityDefinitions={"my key": {"type": "apiKey", "name": "k", "in": "header"}},
        security=[{"my key": []}],
    )
    converted = convert(swagger)
    assert set(converted["components"]["schemas"]) == {"Page_Pet_", "Holder"}
    assert converted["components"]["schemas"]["Holder"] == {"$ref": "#/components/schemas/Page_Pet_"}
    assert converted["security"] == [{"my_key": []}]
    assert set(converted["components"]["securitySchemes"]) == {"my_key"}


def test_names_that_collide_once_made_valid_are_rejected() -> None:
    """Two definitions that would share a 3.0 name cannot both be kept."""
    with pytest.raises(SpecError, match=r"Swagger 2\.0 definitions 'A«B»' and 'A_B_' both become 'A_B_'") as caught:
        convert(_doc(definitions={"A«B»": {}, "A_B_": {}}))
    assert caught.value.pointer == "/definitions/A_B_"


def test_shared_parameters_become_components_and_refs_follow() -> None:
    """A shared query parameter becomes a component parameter; the operation refers to it."""
    swagger = _with_operation(
        {"parameters": [{"$ref": "#/parameters/limit"}]},
        parameters={"limit": {"name": "limit", "in": "query", "type": "integer", "maximum": 100}},
    )
    converted = convert(swagger)
    limit = {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}
    assert converted["components"]["parameters"] == {"limit": limit}
    assert converted["paths"]["/pets/{id}"]["get"]["parameters"] == [{"$ref": "#/components/parameters/limit"}]


def test_a_shared_body_parameter_becomes_a_component_request_body() -> None:
    """A shared body parameter is a request body in 3.0, and a `$ref` to it becomes the operation's requestBody."""
    body = {"name": "pet", "in": "body", "required": True, "schema": {"$ref": "#/definitions/Pet"}}
    swagger = _with_operation(
        {"parameters": [{"$ref": "#/parameters/pet"}]},
        parameters={"pet": body},
        definitions={"Pet": {"type": "object"}},
        consumes=["application/xml"],
    )
    converted = convert(swagger)
    assert converted["components"]["requestBodies"] == {
        "pet": {"required": True, "content": {"application/xml": {"schema": {"$ref": "#/components/schemas/Pet"}}}}
    }
    assert "parameters" not in converted["components"]
    operation = converted["paths"]["/pets/{id}"]["get"]
    assert operation["requestBody"] == {"$ref": "#/components/requestBodies/pet"}
    assert "parameters" not in operation


def test_a_shared_form_parameter_is_inlined_into_the_form_body() -> None:
    """3.0 has no form parameter component: a referenced formData parameter joins the operation's form schema."""
    swagger = _with_operation(
        {"parameters": [{"$ref": "#/parameters/note"}]},
        parameters={"note": {"name": "note", "in": "formData", "type": "string"}},
    )
    converted = convert(swagger)
    assert "components" not in converted
    form = converted["paths"]["/pets/{id}"]["get"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert form["schema"]["properties"] == {"note": {"type": "string"}}


def test_shared_responses_become_components_and_refs_follow() -> None:
    """`#/responses/X` becomes `#/components/responses/X`, converted like any response."""
    swagger = _with_operation(
        {"responses": {"404": {"$ref": "#/responses/NotFound"}}},
        responses={"NotFound": {"description": "gone", "schema": {"$ref": "#/definitions/Error"}}},
        definitions={"Error": {"type": "object"}},
    )
    converted = convert(swagger)
    assert converted["components"]["responses"]["NotFound"] == {
        "description": "gone",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    assert converted["paths"]["/pets/{id}"]["get"]["responses"] == {"404": {"$ref": "#/components/responses/NotFound"}}


def test_security_definitions_become_security_schemes() -> None:
    """basic becomes http basic, apiKey stays, descriptions and extensions are kept."""
    swagger = _doc(
        securityDefinitions={
            "basic": {"type": "basic", "description": "user and password"},
            "key": {"type": "apiKey", "name": "X-Key", "in": "header", "x-note": 1},
        }
    )
    assert convert(swagger)["components"]["securitySchemes"] == {
        "basic": {"type": "http", "scheme": "basic", "description": "user and password"},
        "key": {"type": "apiKey", "name": "X-Key", "in": "header", "x-note": 1},
    }


@pytest.mark.parametrize(
    ("flow", "urls", "expected"),
    [
        ("implicit", {"authorizationUrl": "https://a"}, "implicit"),
        ("password", {"tokenUrl": "https://t"}, "password"),
        ("application", {"tokenUrl": "https://t"}, "clientCredentials"),
        ("accessCode", {"authorizationUrl": "https://a", "tokenUrl": "https://t"}, "authorizationCode"),
    ],
)
def test_oauth2_flows_are_renamed_with_their_urls_and_scopes(flow: str, urls: dict[str, str], expected: str) -> None:
    """Each 2.0 oauth2 flow becomes its 3.0 flow, carrying its URLs and scopes."""
    scheme = {"type": "oauth2", "flow": flow, "scopes": {"read": "Read"}} | urls
    converted = convert(_doc(securityDefinitions={"oauth": scheme}))
    assert converted["components"]["securitySchemes"]["oauth"] == {
        "type": "oauth2",
        "flows": {expected: urls | {"scopes": {"read": "Read"}}},
    }


def test_unknown_security_types_and_flows_are_rejected() -> None:
    """A security definition 2.0 does not define names its place."""
    with pytest.raises(SpecError, match=r"Swagger 2\.0 security `type`") as caught:
        convert(_doc(securityDefinitions={"s": {"type": "bearer"}}))
    assert caught.value.pointer == "/securityDefinitions/s/type"
    with pytest.raises(SpecError, match=r"Swagger 2\.0 oauth2 `flow`") as caught:
        convert(_doc(securityDefinitions={"s": {"type": "oauth2", "flow": "device", "scopes": {}}}))
    assert caught.value.pointer == "/securityDefinitions/s/flow"


def test_operation_parameters_override_path_parameters_by_name_and_location() -> None:
    """Path-level parameters apply to each operation, unless it redefines the same name and `in`."""
    item = {
        "parameters": [
            {"name": "id", "in": "path", "required": True, "type": "string"},
            {"name": "id", "in": "query", "type": "string"},
        ],
        "get": {"parameters": [{"name": "id", "in": "path", "required": True, "type": "integer"}], "responses": OK},
    }
    converted = convert(_doc(paths={"/pets/{id}": item}))
    assert converted["paths"]["/pets/{id}"] == {
        "get": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "id", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": OK,
        }
    }


def test_a_body_parameter_becomes_the_request_body() -> None:
    """A body parameter's schema, description and `required` become the requestBody, one media type per consumes."""
    body = {"name": "b", "in": "body", "description": "The pet", "required": True, "schema": {"type": "object"}}
    operation = _operation(_with_operation({"parameters": [body], "consumes": ["application/json", "text/yaml"]}))
    schema = {"schema": {"type": "object"}}
    assert operation["requestBody"] == {
        "description": "The pet",
        "required": True,
        "content": {"application/json": schema, "text/yaml": schema},
    }


def test_request_media_types_come_from_operation_then_document_then_json() -> None:
    """The operation's `consumes` wins over the document's, and JSON is the default."""
    body = {"name": "b", "in": "body", "schema": {}}
    for operation, fields, media in (
        ({"consumes": ["text/plain"]}, {"consumes": ["text/csv"]}, "text/plain"),
        ({}, {"consumes": ["text/csv"]}, "text/csv"),
        ({}, {}, "application/json"),
    ):
        swagger = _with_operation({"parameters": [body]} | operation, **fields)
        assert list(_operation(swagger)["requestBody"]["content"]) == [media]


def test_form_parameters_become_one_urlencoded_object() -> None:
    """formData parameters are the properties of one urlencoded object; required ones are listed."""
    params = [
        {"name": "name", "in": "formData", "type": "string", "required": True, "description": "Pet name"},
        {"name": "age", "in": "formData", "type": "integer", "minimum": 0},
        {"name": "tags", "in": "formData", "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"},
    ]
    operation = _operation(_with_operation({"parameters": params}))
    assert operation["requestBody"] == {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "Pet name"},
                        "age": {"type": "integer", "minimum": 0},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["name"],
                },
                "encoding": {"tags": {"style": "form", "explode": True}},
            }
        },
        "required": True,
    }
    assert "parameters" not in operation


def test_a_file_parameter_makes_the_form_multipart() -> None:
    """`type: file` is a binary string, and its form is multipart/form-data."""
    params = [{"name": "upload", "in": "formData", "type": "file"}]
    body = _operation(_with_operation({"parameters": params}))["requestBody"]
    assert body == {
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"upload": {"type": "string", "format": "binary"}}}
            }
        }
    }


def test_consuming_multipart_makes_the_form_multipart() -> None:
    """A form without files is multipart too when the operation consumes multipart/form-data."""
    params = [{"name": "note", "in": "formData", "type": "string"}]
    body = _operation(_with_operation({"parameters": params, "consumes": ["multipart/form-data"]}))["requestBody"]
    assert list(body["content"]) == ["multipart/form-data"]


def test_parameter_type_and_constraints_move_into_schema() -> None:
    """type, format, enum, default, bounds, pattern and items move into `schema`; the rest stays on the parameter."""
    param = {
        "name": "q",
        "in": "query",
        "description": "Search",
        "required": True,
        "allowEmptyValue": True,
        "type": "string",
        "format": "uuid",
        "enum": ["a", "b"],
        "default": "a",
        "minLength": 1,
        "maxLength": 9,
        "pattern": "^[ab]$",
        "x-nullable": True,
        "x-hint": "h",
    }
    assert _parameter(param) == {
        "name": "q",
        "in": "query",
        "description": "Search",
        "required": True,
        "allowEmptyValue": True,
        "schema": {
            "type": "string",
            "format": "uuid",
            "enum": ["a", "b"],
            "default": "a",
            "minLength": 1,
            "maxLength": 9,
            "pattern": "^[ab]$",
            "nullable": True,
        },
        "x-hint": "h",
    }


def test_path_parameters_are_always_required() -> None:
    """3.0 requires `required: true` on path parameters, which some 2.0 generators leave out."""
    assert _parameter({"name": "id", "in": "path", "type": "integer", "minimum": 1})["required"] is True


def test_nested_array_items_keep_their_schema_but_not_their_collection_format() -> None:
    """Items of items become nested schemas; an inner `collectionFormat` has no 3.0 place."""
    inner = {"type": "array", "items": {"type": "integer", "maximum": 5}, "collectionFormat": "pipes"}
    param = {"name": "grid", "in": "query", "type": "array", "items": inner, "minItems": 1}
    assert _parameter(param)["schema"] == {
        "type": "array",
        "items": {"type": "array", "items": {"type": "integer", "maximum": 5}},
        "minItems": 1,
    }


@pytest.mark.parametrize(
    ("location", "collection_format", "expected"),
    [
        ("query", None, {"style": "form", "explode": False}),
        ("query", "csv", {"style": "form", "explode": False}),
        ("path", "csv", {"style": "simple", "explode": False}),
        ("header", "csv", {"style": "simple", "explode": False}),
        ("query", "multi", {"style": "form", "explode": True}),
        ("query", "ssv", {"style": "spaceDelimited", "explode": False}),
        ("query", "pipes", {"style": "pipeDelimited", "explode": False}),
        ("query", "tsv", {"style": "form", "explode": False, "x-collectionFormat": "tsv"}),
        ("path", "pipes", {"style": "simple", "explode": False, "x-collectionFormat": "pipes"}),
    ],
)
def test_collection_formats_become_styles(
    location: str, collection_format: str | None, expected: dict[str, Any]
) -> None:
    """Each collectionFormat maps to the 3.0 style meaning the same; csv is the 2.0 default, tsv has no equivalent."""
    param = {"name": "ids", "in": location, "required": True, "type": "array", "items": {"type": "string"}}
    if collection_format:
        param["collectionFormat"] = collection_format
    converted = _parameter(param)
    assert {key: converted[key] for key in converted if key in ("style", "explode", "x-collectionFormat")} == expected


def test_response_schema_becomes_content_per_produced_media_type() -> None:
    """A response schema appears under each media type the operation produces."""
    response = {"description": "the pet", "schema": {"$ref": "#/definitions/Pet"}}
    swagger = _with_operation(
        {"responses": {"200": response}, "produces": ["application/json", "application/xml"]},
        definitions={"Pet": {}},
    )
    schema = {"schema": {"$ref": "#/components/schemas/Pet"}}
    assert _operation(swagger)["responses"]["200"] == {
        "description": "the pet",
        "content": {"application/json": schema, "application/xml": schema},
    }


def test_response_media_types_come_from_operation_then_document_then_json() -> None:
    """The operation's `produces` wins over the document's, and JSON is the default."""
    responses = {"200": {"description": "ok", "schema": {"type": "string"}}}
    for operation, fields, media in (
        ({"produces": ["text/plain"]}, {"produces": ["text/csv"]}, "text/plain"),
        ({}, {"produces": ["text/csv"]}, "text/csv"),
        ({}, {}, "application/json"),
    ):
        swagger = _with_operation({"responses": responses} | operation, **fields)
        assert list(_operation(swagger)["responses"]["200"]["content"]) == [media]


def test_response_headers_and_examples_are_converted() -> None:
    """Header types move into `schema`; each example lands under its media type; status codes become strings."""
    response = {
        "description": "ok",
        "schema": {"type": "object"},
        "headers": {
            "X-Rate": {"type": "integer", "description": "calls left"},
            "X-Ids": {"type": "array", "items": {"type": "string"}},
        },
        "examples": {"application/json": {"id": 1}},
    }
    swagger = _with_operation({"responses": {200: response, "x-note": "n"}})
    responses = _operation(swagger)["responses"]
    assert responses["x-note"] == "n"
    assert responses["200"] == {
        "description": "ok",
        "headers": {
            "X-Rate": {"description": "calls left", "schema": {"type": "integer"}},
            "X-Ids": {"schema": {"type": "array", "items": {"type": "string"}}, "style": "simple", "explode": False},
        },
        "content": {"application/json": {"schema": {"type": "object"}, "example": {"id": 1}}},
    }


def test_a_response_without_schema_has_no_content() -> None:
    """Only a description is left when a response has no schema."""
    swagger = _with_operation({"responses": {"204": {"description": "done"}}})
    assert _operation(swagger)["responses"] == {"204": {"description": "done"}}


@pytest.mark.parametrize(
    ("param", "message", "pointer"),
    [
        ({"name": "id", "type": "string"}, "parameter has no `in`", ""),
        ({"name": "id", "in": "cookie", "type": "string"}, "parameter `in` must be one of", "/in"),
        ({"in": "query", "type": "string"}, "parameter has no `name`", ""),
        ({"name": "id", "in": "query"}, "has no `type`", ""),
        ({"name": "b", "in": "body"}, "body parameter has no `schema`", ""),
        (
            {"name": "id", "in": "query", "type": "array", "collectionFormat": "json"},
            "`collectionFormat`",
            "/collectionFormat",
        ),
        ({"$ref": "#/parameters/missing"}, "points to no parameter", "/$ref"),
        ({"$ref": "#/definitions/Id"}, "must point into #/parameters", "/$ref"),
    ],
)
def test_malformed_parameters_are_rejected_with_their_pointer(
    param: dict[str, Any], message: str, pointer: str
) -> None:
    """A parameter Swagger 2.0 does not allow names what is wrong and where."""
    with pytest.raises(SpecError, match=rf"Swagger 2\.0 .*{re.escape(message)}") as caught:
        convert(_with_operation({"parameters": [param]}))
    assert caught.value.pointer == "/paths/~1pets~1{id}/get/parameters/0" + pointer


@pytest.mark.parametrize(
    ("fields", "message", "pointer"),
    [
        ({"paths": []}, "`paths` must be an object", "/paths"),
        ({"paths": {"/pets": "get"}}, "path item must be an object", "/paths/~1pets"),
        ({"consumes": "application/json"}, "`consumes` must be a list", "/consumes"),
        ({"definitions": {"A": {"$ref": 5}}}, "`$ref` must be a string", "/definitions/A/$ref"),
    ],
)
def test_malformed_documents_are_rejected_with_their_pointer(
    fields: dict[str, Any], message: str, pointer: str
) -> None:
    """A document of the wrong shape names what is wrong and where."""
    with pytest.raises(SpecError, match=rf"Swagger 2\.0 .*{re.escape(message)}") as caught:
        convert(_doc(**fields))
    assert caught.value.pointer == pointer


def test_an_operation_with_two_bodies_is_rejected() -> None:
    """Swagger 2.0 allows one body parameter, and never together with form parameters."""
    params = [{"name": "b", "in": "body", "schema": {}}, {"name": "f", "in": "formData", "type": "string"}]
    with pytest.raises(SpecError, match=r"Swagger 2\.0 operation has more than one body") as caught:
        convert(_with_operation({"parameters": params}))
    assert caught.value.pointer == "/paths/~1pets~1{id}/get"


def test_an_operation_without_responses_is_rejected() -> None:
    """`responses` is required on a Swagger 2.0 operation."""
    with pytest.raises(SpecError, match=r"Swagger 2\.0 operation has no `responses`") as caught:
        convert(_doc(paths={"/pets": {"post": {}}}))
    assert caught.value.pointer == "/paths/~1pets/post"


def test_petstore_converts_with_every_ref_resolving() -> None:
    """The classic Swagger petstore converts: bodies, forms, uploads, arrays and security where 3.0 wants them."""
    converted = convert(yaml.safe_load(PETSTORE.read_text()))
    assert all(_resolve(converted, ref) is not None for ref in _refs(converted))
    paths = converted["paths"]
    assert converted["servers"] == [{"url": "https://petstore.swagger.io/v2"}, {"url": "http://petstore.swagger.io/v2"}]
    assert set(paths["/pet"]["post"]["requestBody"]["content"]) == {"application/json", "application/xml"}
    upload = paths["/pet/{petId}/uploadImage"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "file to upload",
    }
    assert "application/x-www-form-urlencoded" in paths["/pet/{petId}"]["post"]["requestBody"]["content"]
    assert paths["/pet/findByStatus"]["get"]["parameters"][0]["explode"] is True
    assert converted["components"]["securitySchemes"]["petstore_auth"]["flows"]["implicit"]["scopes"]


def test_petstore_conversion_is_valid_openapi_3() -> None:
    """openapi-spec-validator accepts the converted petstore as OpenAPI 3.0."""
    validate(convert(yaml.safe_load(PETSTORE.read_text())), cls=OpenAPIV30SpecValidator)
