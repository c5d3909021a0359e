"""OpenAPI schemas become self-contained JSON Schemas that a 2020-12 validator accepts and applies as meant."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bridge.exceptions import SpecError
from bridge.openapi.schemas import SchemaBundler, to_json_schema


def _document(schemas: dict[str, Any], version: str = "3.0.3") -> dict[str, Any]:
    """A minimal OpenAPI document holding `schemas` as components."""
    return {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": {}, "components": {"schemas": schemas}}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for `schema`, after checking the schema itself is valid 2020-12."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_nullable_with_a_type_adds_null_to_the_type() -> None:
    """3.0 `nullable` on a typed schema widens `type` to a list with "null"."""
    assert to_json_schema({"type": "string", "nullable": True}, "3.0") == {"type": ["string", "null"]}
    assert to_json_schema({"type": "string", "nullable": False}, "3.0") == {"type": "string"}


def test_nullable_enum_also_lists_null() -> None:
    """A nullable enum gets None among its values, or null would still fail the enum."""
    converted = to_json_schema({"type": "string", "enum": ["a", "b"], "nullable": True}, "3.0")
    assert converted == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert _validator(converted).is_valid(None)


def test_nullable_without_a_type_is_wrapped_with_annotations_on_top() -> None:
    """A typeless nullable schema (allOf/$ref) becomes anyOf [schema, null], its description on the wrapper."""
    schema = {"allOf": [{"$ref": "#/components/schemas/Pet"}], "nullable": True, "description": "the pet"}
    assert to_json_schema(schema, "3.0") == {
        "description": "the pet",
        "anyOf": [{"allOf": [{"$ref": "#/$defs/Pet"}]}, {"type": "null"}],
    }
    bundled = SchemaBundler(_document({"Pet": {"type": "object"}})).bundle(schema)
    assert _validator(bundled).is_valid(None)
    assert not _validator(bundled).is_valid(3)


def test_3_1_type_lists_stay_and_nullable_means_nothing() -> None:
    """In 3.1 a `type` list with "null" is already JSON Schema; `nullable` is not a 3.1 keyword."""
    assert to_json_schema({"type": ["string", "null"]}, "3.1") == {"type": ["string", "null"]}
    assert to_json_schema({"type": "string", "nullable": True}, "3.1") == {"type": "string", "nullable": True}


def test_boolean_exclusive_bounds_become_numeric() -> None:
    """`exclusiveMinimum: true` takes the value of `minimum`, which goes; a false flag just goes."""
    schema = {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 9, "exclusiveMaximum": False}
    converted = to_json_schema(schema, "3.0")
    assert converted == {"type": "number", "exclusiveMinimum": 0, "maximum": 9}
    assert not _validator(converted).is_valid(0)
    assert _validator(converted).is_valid(9)
    assert to_json_schema({"exclusiveMaximum": 5}, "3.1") == {"exclusiveMaximum": 5}


def test_example_becomes_examples() -> None:
    """The single OpenAPI `example` becomes the JSON Schema `examples` list."""
    assert to_json_schema({"type": "integer", "example": 7}, "3.0") == {"type": "integer", "examples": [7]}


def test_openapi_only_and_extension_keywords_are_dropped_but_properties_named_like_them_stay() -> None:
    """`discriminator`, `xml`, `externalDocs` and `x-*` go; a property called `x-id` is data, not a keyword."""
    schema = {
        "type": "object",
        "discriminator": {"propertyName": "kind"},
        "xml": {"name": "pet"},
        "externalDocs": {"url": "https://example.com"},
        "x-internal": True,
        "readOnly": True,
        "deprecated": True,
        "properties": {"x-id": {"type": "string", "format": "uuid", "x-order": 1}},
        "additionalProperties": False,
    }
    assert to_json_schema(schema, "3.0") == {
        "type": "object",
        "readOnly": True,
        "deprecated": True,
        "properties": {"x-id": {"type": "string", "format": "uuid"}},
        "additionalProperties": False,
    }


def test_ecma_pattern_is_kept_verbatim() -> None:
    """A `pattern` using ECMA-262 syntax such as \\p{L} is copied as written."""
    assert to_json_schema({"type": "string", "pattern": r"^\p{L}+$"}, "3.1") == {
        "type": "string",
        "pattern": r"^\p{L}+$",
    }


def test_the_input_is_never_mutated_or_shared() -> None:
    """Conversion and bundling build new objects, even for data like `default`."""
    document = _document({"Tag": {"type": "object", "nullable": True, "default": {"a": [1]}, "example": {"a": [2]}}})
    before = copy.deepcopy(document)
    bundled = SchemaBundler(document).bundle({"$ref": "#/components/schemas/Tag"})
    bundled["$defs"]["Tag"]["default"]["a"].append(3)
    assert document == before


def test_recursive_component_bundles_to_a_finite_schema_that_validates_nested_instances() -> None:
    """`Node` with `children: [Node]` stays one $defs entry referring to itself."""
    children = {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}
    node = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "children": children}}
    bundled = SchemaBundler(_document({"Node": node})).bundle({"$ref": "#/components/schemas/Node"})
    assert bundled == {"$ref": "#/$defs/Node", "$defs": {"Node": bundled["$defs"]["Node"]}}
    assert bundled["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    validator = _validator(bundled)
    assert validator.is_valid({"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]})
    assert not validator.is_valid({"name": "a", "children": [{"name": "b", "children": [{}]}]})


def test_mutually_recursive_components_are_each_converted_once() -> None:
    """A → B → A bundles both, each once, with refs left as refs."""
    schemas = {
        "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
        "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}, "n": {"type": "integer"}}},
    }
    bundled = SchemaBundler(_document(schemas)).bundle(
        {"type": "object", "properties": {"root": {"$ref": "#/components/schemas/A"}}}
    )
    assert sorted(bundled["$defs"]) == ["A", "B"]
    assert bundled["$defs"]["B"]["properties"]["a"] == {"$ref": "#/$defs/A"}
    validator = _validator(bundled)
    assert validator.is_valid({"root": {"b": {"a": {"b": {"n": 1}}}}})
    assert not validator.is_valid({"root": {"b": {"a": {"b": {"n": "one"}}}}})


def test_deep_pointer_refs_resolve_after_bundling_even_through_a_nullable_wrapper() -> None:
    """`#/components/schemas/X/properties/p/items` keeps pointing at the same schema, wrapped or not."""
    attributes = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
    tags = {"type": "array", "items": {"type": "string", "maxLength": 3}}
    schemas = {
        "Item": {"type": "object", "properties": {"attributes": attributes}},
        "Maybe": {"nullable": True, "properties": {"tags": tags}},  # no type: wrapped in anyOf
    }
    schema = {
        "type": "object",
        "properties": {
            "attributes": {"$ref": "#/components/schemas/Item/properties/attributes"},
            "tag": {"$ref": "#/components/schemas/Maybe/properties/tags/items"},
        },
    }
    bundled = SchemaBundler(_document(schemas)).bundle(schema)
    assert bundled["properties"]["attributes"] == {"$ref": "#/$defs/Item/properties/attributes"}
    assert bundled["properties"]["tag"] == {"$ref": "#/$defs/Maybe/anyOf/0/properties/tags/items"}
    validator = _validator(bundled)
    assert validator.is_valid({"attributes": {"id": 1}, "tag": "abc"})
    assert not validator.is_valid({"attributes": {}})
    assert not validator.is_valid({"tag": "abcd"})


def test_only_reachable_components_are_included() -> None:
    """Components reached through nesting and through other components come along; the rest do not."""
    schemas = {
        "Used": {"type": "object", "properties": {"inner": {"oneOf": [{"$ref": "#/components/schemas/Transitive"}]}}},
        "Transitive": {"type": "string"},
        "Unused": {"type": "integer"},
    }
    bundled = SchemaBundler(_document(schemas)).bundle(
        {"type": "array", "items": {"$ref": "#/components/schemas/Used"}}
    )
    assert sorted(bundled["$defs"]) == ["Transitive", "Used"]
    assert "$defs" not in SchemaBundler(_document(schemas)).bundle({"type": "string"})


def test_component_names_are_escaped_in_pointers() -> None:
    """A name holding "/", "~" or a space is a $defs key as-is, and its ref is an escaped, encoded pointer."""
    bundled = SchemaBundler(_document({"a/b~c d": {"type": "integer"}}, "3.1.0")).bundle(
        {"$ref": "#/components/schemas/a~1b~0c%20d"}
    )
    assert bundled == {"$ref": "#/$defs/a~1b~0c%20d", "$defs": {"a/b~c d": {"type": "integer"}}}
    assert _validator(bundled).is_valid(1) and not _validator(bundled).is_valid("1")


def test_a_missing_ref_raises_a_spec_error_naming_it_and_where_it_was_met() -> None:
    """The message names the ref; the pointer is the place holding it."""
    document = _document({"Pet": {"type": "object", "properties": {"owner": {"$ref": "#/components/schemas/Owner"}}}})
    with pytest.raises(SpecError, match="#/components/schemas/Owner") as caught:
        SchemaBundler(document).bundle({"$ref": "#/components/schemas/Pet"}, "/paths/~1pets/get")
    assert caught.value.pointer == "/components/schemas/Pet/properties/owner"


@pytest.mark.parametrize(
    "ref",
    [
        "#/paths/~1pets/get",
        "#/components/parameters/limit/schema",
        "other.yaml#/Pet",
        "#/components/schemas/Pet/required",
    ],
)
def test_refs_outside_component_schemas_or_to_non_schemas_are_rejected(ref: str) -> None:
    """Only component schemas (or schemas inside them) can be referenced."""
    document = _document({"Pet": {"type": "object", "required": ["id"]}})
    with pytest.raises(SpecError, match=re.escape(ref)) as caught:
        SchemaBundler(document).bundle({"properties": {"p": {"$ref": ref}}}, "/x")
    assert caught.value.pointer == "/x/properties/p"
