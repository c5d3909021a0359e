"""Tool names: safe characters, bounded length, collisions settled without depending on other operations."""

from __future__ import annotations

import re

from bridge.openapi.naming import MAX_NAME_LENGTH, base_name, tool_names

SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def test_operation_ids_keep_their_words_and_lose_only_unsafe_characters() -> None:
    """Slashes and spaces become underscores instead of vanishing."""
    assert base_name("migrations/list-for-org", "get", "/x") == "migrations_list-for-org"
    assert base_name("get pets (v2)", "get", "/x") == "get_pets_v2"


def test_operations_without_an_id_are_named_from_method_and_path() -> None:
    """GET /pets/{petId} becomes get_pets_petId."""
    assert base_name(None, "GET", "/pets/{petId}") == "get_pets_petId"


def test_long_names_are_shortened_deterministically_and_stay_distinct() -> None:
    """Two 100-character ids with the same prefix get different 64-character names, the same on every run."""
    first = base_name("a" * 100 + "1", "get", "/")
    second = base_name("a" * 100 + "2", "get", "/")
    assert len(first) == len(second) == MAX_NAME_LENGTH
    assert first != second
    assert first == base_name("a" * 100 + "1", "post", "/other")


def test_collisions_get_hashes_that_do_not_depend_on_other_operations() -> None:
    """Adding an unrelated operation never renames a tool; colliding ones are told apart by method and path."""
    before = tool_names([("list", "get", "/a"), ("list", "get", "/b")])
    after = tool_names([("other", "get", "/c"), ("list", "get", "/a"), ("list", "get", "/b")])
    assert before[0] != before[1]
    assert after[1:] == before
    assert all(SAFE.match(name) for name in after)
