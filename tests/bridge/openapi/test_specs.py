"""Specs as people write them, turned into tools: recursive schemas, OpenAPI 3.1, `$ref`s into other files, unsafe
operation ids, filters; and broken specs, each refused with what is wrong and the JSON pointer of where."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any, Final

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp.client import Client

from bridge.exceptions import SpecError
from bridge.openapi.loader import load_spec, validate_spec
from bridge.openapi.tools import Operation, Selector, build_operations
from tests.conftest import FIXTURES, ROOT, RunningBridge, free_port

SPECS: Final = FIXTURES / "specs"
SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""What every MCP client accepts as a tool name."""
BRIDGE_OPENAPI: Final = [sys.executable, "-m", "bridge", "openapi"]
NOT_OPENAPI: Final = "declares neither 'openapi: 3.0.x/3.1.x' nor 'swagger: \"2.0\"'"
NOT_AN_OBJECT: Final = "is not an OpenAPI document (its top level is not an object)"
MISSING_PET_AT: Final = "/paths/~1pets/get/responses/200/content/application~1json/schema/items"
"""Where broken-missing-component.yaml uses the `$ref` to a Pet it does not define."""


def operations(name: str, **filters: list[Selector]) -> dict[str, Operation]:
    """The operations of a fixture spec that loads and validates cleanly, by tool name."""
    spec = load_spec(str(SPECS / name))
    assert validate_spec(spec) == []
    return {op.tool["name"]: op for op in build_operations(spec.document, **filters)}


def input_schema(spec: str, tool: str) -> dict[str, Any]:
    schema: dict[str, Any] = operations(spec)[tool].tool["inputSchema"]
    Draft202012Validator.check_schema(schema)
    return schema


def error_paths(schema: dict[str, Any], instance: Any) -> list[list[str | int]]:
    """Where `instance` breaks `schema` (2020-12), one path per error."""
    return sorted(list(error.absolute_path) for error in Draft202012Validator(schema).iter_errors(instance))


def test_recursive_comment_threads_become_defs_that_validate_nested_replies() -> None:
    """`Comment.replies: [Comment]` stays a `$ref` into the tool's own `$defs`; a reply three levels down is checked."""
    schema = input_schema("comments-recursive.yaml", "postComment")
    assert schema["properties"]["replies"] == {"type": "array", "items": {"$ref": "#/$defs/Comment"}}
    assert schema["$defs"]["Comment"]["properties"]["replies"]["items"] == {"$ref": "#/$defs/Comment"}
    thread: dict[str, Any] = {
        "thread_id": 7,
        "author": "ann",
        "text": "first",
        "replies": [{"author": "bob", "text": "second", "replies": [{"author": "cy", "text": "third"}]}],
    }
    assert error_paths(schema, thread) == []
    thread["replies"][0]["replies"][0]["text"] = ""
    assert error_paths(schema, thread) == [["replies", 0, "replies", 0, "text"]]


def test_recursive_tree_with_a_nullable_parent_validates_at_any_depth() -> None:
    """A 3.0 `nullable` ref to the node's own schema accepts null or a node, however deep the tree is."""
    schema = input_schema("comments-recursive.yaml", "putTree")
    assert set(schema["$defs"]) == {"TreeNode"}
    leaf: dict[str, Any] = {"value": 3, "parent": None}
    tree = {"root": {"value": 1, "children": [{"value": 2, "children": [leaf], "parent": {"value": 1}}]}}
    assert error_paths(schema, tree) == []
    leaf["value"] = "three"
    assert error_paths(schema, tree) == [["root", "children", 0, "children", 0, "value"]]


def test_openapi_31_type_arrays_const_and_2020_12_keywords_reach_the_input_schema() -> None:
    """3.1 schemas are JSON Schema 2020-12 already: null in `type`, `const`, numeric `exclusiveMinimum`, `prefixItems`.

    They pass through unchanged, and a 2020-12 validator applies them.
    """
    cursor = input_schema("openapi31-features.yaml", "listReports")["properties"]["cursor"]
    assert cursor["type"] == ["string", "null"]
    schema = input_schema("openapi31-features.yaml", "createReport")
    assert schema["properties"]["kind"] == {"const": "report"}
    assert schema["properties"]["score"] == {"type": "number", "exclusiveMinimum": 0}
    assert schema["properties"]["note"] == {"type": ["string", "null"], "examples": ["checked twice"]}
    assert schema["properties"]["range"]["prefixItems"] == [{"type": "integer"}, {"type": "integer"}]
    assert error_paths(schema, {"kind": "report", "score": 0.5, "note": None, "range": [1, 2]}) == []
    assert error_paths(schema, {"kind": "memo", "score": 0, "range": [1, 2, 3]}) == [["kind"], ["range"], ["score"]]


def test_refs_to_a_component_of_another_file_and_to_a_whole_schema_file_are_resolved() -> None:
    """`./external-common.yaml#/components/schemas/Pet` and `./external-owner.yaml` end up inlined in the tools."""
    tools = operations("external-ref.yaml")
    pet = tools["addPet"].tool["inputSchema"]
    assert pet["properties"] == {"name": {"type": "string"}, "species": {"type": "string", "enum": ["cat", "dog"]}}
    assert pet["required"] == ["name"]
    owner = tools["putOwner"].tool["inputSchema"]
    assert owner["properties"]["email"] == {"type": "string", "format": "email"}
    assert owner["required"] == ["owner_id", "email"]
    assert ".yaml" not in repr(load_spec(str(SPECS / "external-ref.yaml")).document)


@pytest.mark.parametrize(
    ("fixture", "message", "pointer"),
    [
        ("broken-not-openapi.yaml", NOT_OPENAPI + " (found '')", "/openapi"),
        ("broken-not-an-object.yaml", NOT_AN_OBJECT, ""),
        ("broken-unknown-version.yaml", NOT_OPENAPI + " (found '4.0.0')", "/openapi"),
    ],
)
def test_a_document_that_is_not_openapi_3_or_swagger_2_is_refused_on_loading(
    fixture: str, message: str, pointer: str
) -> None:
    """The loader says what it found instead of an OpenAPI document, and where."""
    with pytest.raises(SpecError) as raised:
        load_spec(str(SPECS / fixture))
    assert message in str(raised.value)
    assert raised.value.pointer == pointer
    assert str(raised.value).endswith(f"(at {pointer or '/'})")


def test_a_ref_to_a_missing_component_is_reported_where_it_is_used() -> None:
    """Validation names the dangling `$ref` and points at the schema that holds it."""
    problems = validate_spec(load_spec(str(SPECS / "broken-missing-component.yaml")))
    assert len(problems) == 1
    assert "'#/components/schemas/Pet' points to nothing" in str(problems[0])
    assert problems[0].pointer == MISSING_PET_AT


def test_a_ref_to_a_missing_component_met_while_building_tools_points_into_the_document() -> None:
    """Specs too large to validate first meet the dangling `$ref` while building tools: the pointer must still exist."""
    document = load_spec(str(SPECS / "broken-missing-component.yaml")).document
    with pytest.raises(SpecError, match="'#/components/schemas/Pet'") as raised:
        build_operations(document)
    assert raised.value.pointer == MISSING_PET_AT


def test_a_parameter_without_in_is_refused_by_validation_and_by_tool_building() -> None:
    """Both checks point at the parameter; building tools also says which locations exist."""
    spec = load_spec(str(SPECS / "broken-parameter-without-in.yaml"))
    problems = validate_spec(spec)
    assert [problem.pointer for problem in problems] == ["/paths/~1pets/get/parameters/0"]
    with pytest.raises(SpecError, match=r"needs a 'name' and 'in' \(path, query, header or cookie\)") as raised:
        build_operations(spec.document)
    assert raised.value.pointer == "/paths/~1pets/get/parameters/0"


def test_a_parameter_in_nowhere_is_caught_by_validation() -> None:
    """`in: nowhere` is only wrong against the OpenAPI schema: validation reports it with the parameter's pointer."""
    problems = validate_spec(load_spec(str(SPECS / "broken-parameter-in-nowhere.yaml")))
    assert len(problems) == 1
    assert str(problems[0]).startswith("Invalid OpenAPI document:")
    assert "nowhere" in str(problems[0])
    assert problems[0].pointer == "/paths/~1pets/get/parameters/0"


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("broken-not-openapi.yaml", NOT_OPENAPI + " (found '') (at /openapi)"),
        ("broken-not-an-object.yaml", NOT_AN_OBJECT + " (at /)"),
        ("broken-unknown-version.yaml", "(found '4.0.0') (at /openapi)"),
        (
            "broken-missing-component.yaml",
            f"'#/components/schemas/Pet' points to nothing in the document (at {MISSING_PET_AT})",
        ),
        ("broken-parameter-without-in.yaml", "Invalid OpenAPI document:"),
        ("broken-parameter-without-in.yaml", "(at /paths/~1pets/get/parameters/0)"),
        ("broken-parameter-in-nowhere.yaml", "(at /paths/~1pets/get/parameters/0)"),
    ],
)
def test_plexus_bridge_openapi_exits_2_printing_the_error_and_its_pointer(fixture: str, expected: str) -> None:
    """`plexus-bridge openapi --spec broken.yaml` refuses to start: exit status 2, the reason and where, no trace."""
    completed = subprocess.run(
        [*BRIDGE_OPENAPI, "--port", str(free_port()), "--spec", str(SPECS / fixture)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.startswith("plexus-bridge: error: ")
    assert expected in completed.stderr
    assert "Traceback" not in completed.stderr


def test_operation_ids_with_slashes_and_100_characters_become_safe_distinct_names() -> None:
    """Slashes become `_`; ids past 64 characters are cut with a hash of the whole, so two ids sharing 64 stay apart."""
    names = list(operations("names-and-filters.yaml"))
    assert all(SAFE_NAME.fullmatch(name) for name in names), names
    assert len(set(names)) == len(names) == 8
    assert {"repos_list-for-org", "repos_create-in-org", "repos_delete", "orgs_get-member"} <= set(names)
    long_names = [name for name in names if name.startswith("listEveryArchived")]
    assert len(long_names) == 2
    assert all(len(name) == 64 for name in long_names)
    assert long_names[0] != long_names[1]
    assert long_names[0][:55] == long_names[1][:55]
    assert "get_meta" in names


def test_names_do_not_depend_on_which_other_operations_are_served() -> None:
    """A tool keeps its name when filters drop the operations around it (a shortened name keeps its hash)."""
    path = "/orgs/{org}/repos/archived"
    everything = operations("names-and-filters.yaml")
    alone = operations("names-and-filters.yaml", include=[Selector.parse("path:" + path)])
    assert list(alone) == [name for name, op in everything.items() if op.path == path]


def test_include_tag_and_exclude_method_select_the_operations() -> None:
    """`tag:repos` keeps the repository operations, `method:DELETE` drops deletions, both together combine."""
    repos = operations("names-and-filters.yaml", include=[Selector.parse("tag:repos")])
    assert {op.tags for op in repos.values()} == {("repos",)} and len(repos) == 5
    kept = operations("names-and-filters.yaml", exclude=[Selector.parse("method:DELETE")])
    assert "DELETE" not in {op.method for op in kept.values()} and len(kept) == 6
    both = operations(
        "names-and-filters.yaml", include=[Selector.parse("tag:repos")], exclude=[Selector.parse("method:delete")]
    )
    assert set(both) == {name for name, op in repos.items() if op.method != "DELETE"}
    assert len(both) == 4


def test_a_filter_of_an_unknown_kind_is_refused_naming_the_kinds() -> None:
    """`color:red` is no filter: the error lists the four kinds there are."""
    kinds = "tag:NAME, op:OPERATION_ID, path:GLOB, method:METHOD"
    with pytest.raises(SpecError, match=f"'color:red' is not one of {kinds}"):
        Selector.parse("color:red")


@pytest.mark.anyio
async def test_the_bridge_serves_only_the_operations_its_filters_keep(tmp_path: Any) -> None:
    """`--include tag:repos --exclude method:DELETE` on the command line: tools/list shows those four tools only."""
    port = free_port()
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*BRIDGE_OPENAPI, "--port", str(port), "--spec", str(SPECS / "names-and-filters.yaml"),
             "--base-url", "http://127.0.0.1:9", "--include", "tag:repos", "--exclude", "method:DELETE"],
            stderr=log,
            cwd=ROOT,
        )  # fmt: skip
    bridge = RunningBridge(f"http://127.0.0.1:{port}", process)
    try:
        bridge.wait_ready()
        with anyio.fail_after(20):
            async with Client(bridge.mcp, mode="legacy") as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert {"repos_list-for-org", "repos_create-in-org"} <= names
    assert len(names) == 4
    assert "repos_delete" not in names and "orgs_get-member" not in names
