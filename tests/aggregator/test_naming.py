"""Exposed names and URIs: safe, bounded, deterministic, and reversible for resources."""

from __future__ import annotations

import hashlib
import re

import pytest

from aggregator.config import SEPARATORS
from aggregator.naming import (
    MAX_NAME_LENGTH,
    MAX_TARGET_NAME_LENGTH,
    exposed_name,
    exposed_uri,
    original_uri,
    prefix_applies,
    safe,
    valid_target_name,
)

SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def test_names_are_prefixed_with_the_target_and_separator() -> None:
    """`everything` + `_` + `echo` is everything_echo; other separators are used as given."""
    assert exposed_name("everything", "echo", prefix=True, separator="_") == "everything_echo"
    assert exposed_name("everything", "echo", prefix=True, separator="__") == "everything__echo"
    assert exposed_name("everything", "echo", prefix=True, separator=".") == "everything.echo"


def test_names_without_prefix_are_the_upstream_name() -> None:
    """With the prefix off, the target and separator do not appear."""
    assert exposed_name("everything", "echo", prefix=False, separator="_") == "echo"


def test_safe_names_are_kept_unchanged() -> None:
    """Letters, digits, `_`, `.` and `-` pass through, case kept."""
    assert safe("Get_Time.v2-beta") == "Get_Time.v2-beta"


def test_unsafe_characters_become_one_underscore_each() -> None:
    """Spaces, slashes, colons and non-ASCII letters are replaced, never dropped, so lengths are kept."""
    assert safe("get pets/{id}") == "get_pets__id_"
    assert safe("héllo:wörld") == "h_llo_w_rld"
    assert safe("工具") == "__"


def test_an_empty_name_becomes_an_underscore() -> None:
    """No exposed name is ever empty."""
    assert safe("") == "_"
    assert exposed_name("t", "", prefix=False, separator="_") == "_"


def test_unsafe_upstream_names_are_made_safe_after_prefixing() -> None:
    """The prefix is kept and the upstream part loses its unsafe characters."""
    assert exposed_name("github", "search issues", prefix=True, separator="_") == "github_search_issues"


def test_names_of_exactly_64_characters_are_not_shortened() -> None:
    """The limit is inclusive: no hash is added to a name that fits."""
    name = "t_" + "a" * 62
    assert exposed_name("t", "a" * 62, prefix=True, separator="_") == name


def test_long_names_are_cut_to_64_with_a_hash_of_the_whole_name() -> None:
    """A readable 55-character prefix, `_`, then 8 hex digits of the SHA-256 of the full name."""
    full = "target_" + "x" * 100
    name = exposed_name("target", "x" * 100, prefix=True, separator="_")
    assert len(name) == MAX_NAME_LENGTH
    assert name == full[:55] + "_" + hashlib.sha256(full.encode()).hexdigest()[:8]


def test_shortening_is_deterministic_and_keeps_long_names_apart() -> None:
    """The same input always gives the same name; names differing only at the end stay distinct."""
    first = exposed_name("t", "a" * 100 + "1", prefix=True, separator="_")
    second = exposed_name("t", "a" * 100 + "2", prefix=True, separator="_")
    assert first == exposed_name("t", "a" * 100 + "1", prefix=True, separator="_")
    assert first != second
    assert first[:55] == second[:55]


def test_long_names_differing_only_in_unsafe_characters_stay_apart() -> None:
    """The hash is of the name before unsafe characters are replaced."""
    first = exposed_name("t", "a" * 80 + " ", prefix=True, separator="_")
    second = exposed_name("t", "a" * 80 + "/", prefix=True, separator="_")
    assert first != second


def test_long_unprefixed_names_are_shortened_too() -> None:
    """Shortening applies to the exposed name, with or without prefix."""
    assert len(exposed_name("t", "n" * 200, prefix=False, separator="_")) == MAX_NAME_LENGTH


def test_the_longest_target_name_survives_shortening() -> None:
    """A 40-character target, a 2-character separator and a long tool keep the whole prefix readable."""
    target = "t" * MAX_TARGET_NAME_LENGTH
    name = exposed_name(target, "tool" * 30, prefix=True, separator="__")
    assert name.startswith(target + "__tool")
    assert len(name) == MAX_NAME_LENGTH


@pytest.mark.parametrize(
    "upstream",
    ["echo", "a b c", "ünïcödé" * 20, "x" * 300, "/../etc/passwd", "name\nwith\ttabs", "emoji🙂tool", ""],
)
@pytest.mark.parametrize("separator", SEPARATORS)
def test_every_exposed_name_is_safe_and_bounded(upstream: str, separator: str) -> None:
    """Whatever the upstream name, the result matches [A-Za-z0-9_.-]{1,64}."""
    for prefix in (True, False):
        assert SAFE.match(exposed_name("some-target", upstream, prefix=prefix, separator=separator))


@pytest.mark.parametrize("name", ["a", "github", "web-search", "a1-b2", "0", "x" * 40])
def test_dns_label_like_target_names_are_valid(name: str) -> None:
    """Lowercase letters, digits and inner hyphens, up to 40 characters."""
    assert valid_target_name(name)


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "Github", "a_b", "a.b", "a b", "x" * 41, "é"])
def test_other_target_names_are_invalid(name: str) -> None:
    """Uppercase, separators, edge hyphens, empty and over-long names are refused."""
    assert not valid_target_name(name)


def test_no_separator_can_occur_in_a_target_name() -> None:
    """So `<target><separator><name>` always splits at the first separator."""
    target_characters = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    for separator in SEPARATORS:
        assert not set(separator) & target_characters


@pytest.mark.parametrize(
    "uri",
    [
        "file:///{path}",
        "test://static/resource/{id}",
        "test://static/resource/1",
        "https://example.com/a?b=c&d={e}#frag",
        "plexus://other/nested",
        "urn:isbn:0451450523",
        "{+base}/items{?page,size}",
        "",
        "file:///tmp/with space/ünïcode",
    ],
)
def test_resource_uris_round_trip(uri: str) -> None:
    """original_uri undoes exposed_uri exactly, templates and odd URIs included."""
    assert original_uri(exposed_uri("everything", uri)) == ("everything", uri)


def test_exposed_uris_are_the_original_appended_to_the_target() -> None:
    """The original is appended verbatim, so RFC 6570 variables stay where they were."""
    assert exposed_uri("everything", "file:///{path}") == "plexus://everything/file:///{path}"
    assert exposed_uri("everything", "test://static/resource/{id}") == "plexus://everything/test://static/resource/{id}"


def test_an_expanded_template_maps_back_to_the_expanded_original() -> None:
    """A client filling in `{id}` in the exposed template yields the URI the target would have given."""
    template = exposed_uri("everything", "test://static/resource/{id}")
    assert original_uri(template.replace("{id}", "42")) == ("everything", "test://static/resource/42")


def test_nested_plexus_uris_unwrap_one_level() -> None:
    """An aggregator behind an aggregator: only the outer target is removed."""
    assert original_uri("plexus://outer/plexus://inner/file:///x") == ("outer", "plexus://inner/file:///x")


def test_the_scheme_is_matched_case_insensitively() -> None:
    """URI schemes are case-insensitive (RFC 3986), so PLEXUS:// is ours too."""
    assert original_uri("PLEXUS://time/x") == ("time", "x")


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/hosts",
        "plexus://",
        "plexus://everything",
        "plexus:///file:///x",
        "plexus://Everything/x",
        "plexus://bad_name/x",
        "plexus:everything/x",
        "plexusx://everything/x",
        "",
    ],
)
def test_uris_not_made_by_exposed_uri_are_not_ours(uri: str) -> None:
    """Other schemes, a missing or invalid target, or no `/` after it give None."""
    assert original_uri(uri) is None


@pytest.mark.parametrize(
    ("mode", "count", "expected"),
    [
        ("always", 0, True),
        ("always", 1, True),
        ("always", 5, True),
        ("never", 1, False),
        ("never", 5, False),
        ("conditional", 0, False),
        ("conditional", 1, False),
        ("conditional", 2, True),
    ],
)
def test_prefix_modes(mode: str, count: int, expected: bool) -> None:
    """Conditional prefixes only when more than one target is served."""
    assert prefix_applies(mode, count) is expected


def test_an_unknown_prefix_mode_is_a_programming_error() -> None:
    """Config validation prevents it, so the Python API raises ValueError."""
    with pytest.raises(ValueError, match="sometimes"):
        prefix_applies("sometimes", 2)
