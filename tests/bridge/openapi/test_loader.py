"""Specs as users have them: recursive, 3.1, split over files, and broken (each refused with where and why)."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
import pytest

from bridge.exceptions import SpecError
from bridge.openapi.loader import load_spec, validate_spec
from bridge.openapi.tools import build_operations
from tests.conftest import FIXTURES, ROOT

SPECS = FIXTURES / "specs"


def tools_of(name: str) -> dict[str, dict[str, object]]:
    spec = load_spec(str(SPECS / name))
    assert validate_spec(spec) == []
    return {op.tool["name"]: op.tool for op in build_operations(spec.document)}


def test_a_recursive_schema_becomes_a_finite_schema_that_validates_nested_input() -> None:
    """Comment.replies: [Comment] stays a $ref into $defs; a three-level thread validates, a bad leaf does not."""
    tool = tools_of("loader-recursive.yaml")["createThread"]
    schema = tool["inputSchema"]
    assert isinstance(schema, dict) and "Comment" in schema["$defs"]
    thread = {"text": "a", "replies": [{"text": "b", "replies": [{"text": "c"}]}]}
    jsonschema.Draft202012Validator(schema).validate(thread)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"text": "a", "replies": [{"text": 3}]})


def test_openapi_31_null_types_const_and_colliding_names_are_carried_over() -> None:
    """`type: [string, "null"]` and `const` survive; a query and a body property named like the path id are renamed."""
    schema = tools_of("loader-openapi31.yaml")["putNote"]["inputSchema"]
    assert isinstance(schema, dict)
    properties = schema["properties"]
    assert properties["id"]["type"] == "integer" and properties["id"]["not"] == {"enum": ["", ".", ".."]}
    assert properties["query_id"] == {"type": "string"}
    assert properties["body_id"] == {"type": "string"}
    assert properties["title"]["type"] == ["string", "null"]
    assert properties["kind"]["const"] == "note"


def test_external_ref_files_are_inlined() -> None:
    """A schema kept in another file relative to the spec becomes part of the tool's output schema."""
    output = tools_of("loader-external.yaml")["listPets"]["outputSchema"]
    assert isinstance(output, dict)
    assert output["properties"]["result"]["items"]["properties"]["name"] == {"type": "string"}


@pytest.mark.parametrize(
    ("name", "message", "pointer"),
    [
        ("loader-broken-ref.yaml", "Missing", "/paths/~1a/get"),
        ("loader-broken-in.yaml", "in", "/paths/~1a/get/parameters/0"),
    ],
)
def test_broken_specs_are_refused_naming_what_and_where(name: str, message: str, pointer: str) -> None:
    """Validation or tool generation fails with a SpecError whose pointer leads to the problem."""
    spec = load_spec(str(SPECS / name))
    problems = validate_spec(spec)
    if not problems:
        with pytest.raises(SpecError) as raised:
            build_operations(spec.document)
        problems = [raised.value]
    assert message in str(problems[0]) and problems[0].pointer.startswith(pointer)


def test_not_an_openapi_document_is_refused(tmp_path: object) -> None:
    """A YAML file that is not OpenAPI says which version line is missing."""
    with pytest.raises(SpecError, match="declares neither"):
        load_spec(str(SPECS / "external" / "pet.yaml"))


def test_the_cli_exits_2_with_the_error_and_its_pointer() -> None:
    """`plexus-bridge openapi --spec broken.yaml` prints the problem with its JSON pointer and exits 2."""
    completed = subprocess.run(
        [sys.executable, "-m", "bridge", "openapi", "--spec", str(SPECS / "loader-broken-in.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "at /paths/~1a/get/parameters/0" in completed.stderr and "Traceback" not in completed.stderr
