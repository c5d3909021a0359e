"""The aggregator's config file: what it sets, and how every mistake is named together with its fix."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from aggregator.config import AggregatorConfig, load_config, parse_config
from aggregator.discovery import Target, TargetPolicy
from aggregator.exceptions import ConfigError
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "aggregator.yaml"


def parse(text: str, allow_launch: bool = False) -> AggregatorConfig:
    return parse_config(textwrap.dedent(text), "agg.yaml", allow_launch)


def error(text: str, allow_launch: bool = False) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, allow_launch)
    message = str(caught.value)
    assert message.startswith("agg.yaml")
    return message


def test_a_minimal_file_gets_the_defaults() -> None:
    """Only targets given: prefix always, `_`, 2 s lists, 300 s calls, server name plexus."""
    config = parse("targets: [{name: time, url: 'http://127.0.0.1:8082/mcp'}]")
    assert config == AggregatorConfig(targets={"time": Target(name="time", url="http://127.0.0.1:8082/mcp")})
    assert (config.prefix, config.separator, config.list_timeout, config.call_timeout) == ("always", "_", 2.0, 300.0)
    assert (config.server_name, config.instructions) == ("plexus", None)


def test_every_key_is_read() -> None:
    """Top-level settings and a full per-target policy end up in the dataclasses."""
    config = parse(
        """
        prefix: conditional
        separator: "__"
        timeouts: {list: 1.5, call: 60}
        server: {name: hub, instructions: Use the tools.}
        targets:
          - name: github
            url: https://mcp.example.com/sse
            transport: sse
            include: ["issue_*", "pull_*"]
            exclude: ["*_delete"]
            rename: {issue_read: read_issue}
            descriptions: {issue_read: Read one issue.}
            forward_headers: [Authorization, X-Tenant]
            timeouts: {list: 5, call: 30}
          - name: time
            url: http://time:8080/mcp
        """
    )
    assert (config.prefix, config.separator, config.list_timeout, config.call_timeout) == (
        "conditional",
        "__",
        1.5,
        60.0,
    )
    assert (config.server_name, config.instructions) == ("hub", "Use the tools.")
    assert list(config.targets) == ["github", "time"]
    assert config.targets["github"] == Target(
        name="github",
        url="https://mcp.example.com/sse",
        transport="sse",
        policy=TargetPolicy(
            include=("issue_*", "pull_*"),
            exclude=("*_delete",),
            rename={"issue_read": "read_issue"},
            descriptions={"issue_read": "Read one issue."},
            forward_headers=("authorization", "x-tenant"),
            list_timeout=5.0,
            call_timeout=30.0,
        ),
    )
    assert config.targets["time"].policy == TargetPolicy()


def test_per_target_timeouts_may_be_given_one_at_a_time() -> None:
    """A missing per-target timeout stays None: the aggregator-wide value applies."""
    config = parse("targets: [{name: t, url: 'http://t/mcp', timeouts: {call: 10}}]")
    assert (config.targets["t"].policy.list_timeout, config.targets["t"].policy.call_timeout) == (None, 10.0)


def test_an_empty_target_list_is_allowed() -> None:
    """`targets: []` is a deliberate empty catalogue."""
    assert parse("targets: []").targets == {}


def test_forwarded_headers_are_lowercased_and_deduplicated() -> None:
    """Header names are case-insensitive."""
    config = parse("targets: [{name: t, url: 'http://t/mcp', forward_headers: [Authorization, authorization]}]")
    assert config.targets["t"].policy.forward_headers == ("authorization",)


def test_the_example_file_loads() -> None:
    """examples/aggregator.yaml is valid and serves everything and time."""
    config = load_config(EXAMPLE)
    assert config.targets["everything"].url == "http://127.0.0.1:8081/mcp"
    assert set(config.targets) == {"everything", "time"}


def test_every_commented_key_in_the_example_is_valid_too() -> None:
    """Uncommenting every commented-out key of the example (dev-mode targets included) still loads."""
    text = re.sub(r"(?m)^(\s+)# (?=\s*\w+:|- )", r"\1", EXAMPLE.read_text())
    config = parse_config(text, str(EXAMPLE), allow_launch=True)
    assert config.instructions is not None
    policy = config.targets["time"].policy
    assert policy.include and policy.exclude and policy.rename and policy.descriptions and policy.forward_headers
    assert policy.list_timeout and policy.call_timeout
    assert config.targets["files"].launch == {"stdio": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}
    launch = config.targets["petstore"].launch
    assert launch is not None and launch["openapi"]["spec"] == "tests/fixtures/specs/petstore-swagger2.yaml"


def test_dev_mode_targets_carry_their_launch_and_an_empty_url() -> None:
    """stdio and openapi entries become `launch` mappings; the launcher fills in the url."""
    config = parse(
        """
        targets:
          - {name: files, stdio: [npx, -y, server-filesystem, /tmp]}
          - {name: pets, openapi: {spec: pets.yaml, base_url: 'http://127.0.0.1:4010'}}
          - {name: docs, openapi: {spec: 'https://example.com/openapi.json'}}
        """,
        allow_launch=True,
    )
    assert config.targets["files"] == Target(
        name="files", url="", launch={"stdio": ["npx", "-y", "server-filesystem", "/tmp"]}
    )
    assert config.targets["pets"].launch == {"openapi": {"spec": "pets.yaml", "base_url": "http://127.0.0.1:4010"}}
    assert config.targets["docs"].launch == {"openapi": {"spec": "https://example.com/openapi.json", "base_url": None}}


@pytest.mark.parametrize("entry", ["{name: f, stdio: [cat]}", "{name: f, openapi: {spec: pets.yaml}}"])
def test_dev_mode_targets_are_refused_outside_dev_mode(entry: str) -> None:
    """Without allow_launch the file must name running servers, and the message says how."""
    message = error(f"targets: [{entry}]")
    assert "target #1 ('f')" in message
    assert "dev mode" in message and "plexus-bridge" in message and "url" in message


def test_unknown_top_level_keys_are_named_with_the_allowed_ones() -> None:
    """A misspelt key is an error listing every allowed key."""
    message = error("targets: []\nprefx: never\n")
    assert "unknown key 'prefx'" in message
    assert "allowed: prefix, separator, timeouts, server, targets" in message


def test_unknown_target_keys_name_the_target() -> None:
    """Position, name, the unknown key and the allowed keys are all in the message."""
    message = error(
        """
        targets:
          - {name: a, url: 'http://a/mcp'}
          - {name: b, url: 'http://b/mcp', exlude: ['*'], extra: 1}
        """
    )
    assert "target #2 ('b')" in message
    assert "unknown keys 'exlude', 'extra'" in message
    assert "exclude" in message and "forward_headers" in message


@pytest.mark.parametrize(
    ("section", "key"),
    [("timeouts: {lists: 2}", "lists"), ("server: {title: x}", "title")],
)
def test_unknown_nested_keys_are_errors(section: str, key: str) -> None:
    """Timeouts and server blocks are checked like the top level."""
    assert f"unknown key {key!r}" in error(f"targets: []\n{section}\n")


def test_a_key_given_twice_is_an_error_with_its_line() -> None:
    """YAML would keep the last silently; the config refuses it."""
    message = error("targets: []\nprefix: always\nprefix: never\n")
    assert "'prefix' is given twice" in message
    assert "line 3" in message


def test_merged_keys_may_be_overridden() -> None:
    """YAML merge keys (`<<`) are not duplicates: the explicit key wins."""
    config = parse(
        """
        targets:
          - &first {name: a, url: 'http://a/mcp', timeouts: {call: 5}}
          - {<<: *first, name: b, url: 'http://b/mcp'}
        """
    )
    assert config.targets["b"].url == "http://b/mcp"
    assert config.targets["b"].policy.call_timeout == 5.0


def test_broken_yaml_names_the_line() -> None:
    """A syntax error reports where it is."""
    message = error("targets: [\n  {name: a\n")
    assert "line" in message and "Fix the YAML" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_file_is_an_error(text: str) -> None:
    """An empty file (often a half-written one) is never an empty configuration."""
    assert "empty" in error(text)


def test_a_missing_target_list_is_an_error() -> None:
    """`targets` is required, and the message shows how to say none."""
    assert "targets: []" in error("prefix: always\n")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_a_top_level_that_is_not_a_mapping_is_an_error(text: str) -> None:
    """The file must be a mapping of settings."""
    assert "must be a mapping" in error(text)


def test_targets_must_be_a_list() -> None:
    """A mapping of targets is refused with the expected shape."""
    assert "targets must be a list" in error("targets: {a: {url: 'http://a'}}\n")


@pytest.mark.parametrize(
    "name",
    ["GitHub", "a_b", "a.b", "-a", "a-", "''", "x" * 41, "123", "[a]"],
)
def test_invalid_target_names_are_refused_with_the_rule(name: str) -> None:
    """The message quotes the name and states the rule."""
    message = error(f"targets: [{{name: {name}, url: 'http://a/mcp'}}]")
    assert "not a valid target name" in message
    assert "lowercase letters, digits and '-'" in message and "at most 40" in message


def test_a_target_without_a_name_is_refused() -> None:
    """The position is named since there is no name."""
    message = error("targets: [{url: 'http://a/mcp'}]")
    assert "target #1: `name` is missing" in message


def test_duplicate_target_names_are_refused() -> None:
    """The second use of a name is reported."""
    message = error("targets: [{name: a, url: 'http://a/mcp'}, {name: a, url: 'http://b/mcp'}]")
    assert "target #2" in message and "'a' is already used" in message


@pytest.mark.parametrize(
    "entry",
    [
        "{name: a}",
        "{name: a, url: 'http://a/mcp', stdio: [cat]}",
        "{name: a, stdio: [cat], openapi: {spec: x.yaml}}",
    ],
)
def test_exactly_one_of_url_stdio_openapi(entry: str) -> None:
    """Neither or several ways to reach a target is an error."""
    assert "exactly one of `url`" in error(f"targets: [{entry}]", allow_launch=True)


@pytest.mark.parametrize(
    "url", ["ftp://a/mcp", "127.0.0.1:8080/mcp", "http://", "/mcp", "'http://[::1/mcp'", "42", "''"]
)
def test_urls_must_be_http_or_https_with_a_host(url: str) -> None:
    """The message quotes the url and shows the expected form."""
    message = error(f"targets: [{{name: a, url: {url}}}]")
    assert "url must be an http:// or https:// URL" in message and "target #1 ('a')" in message


def test_the_openapi_base_url_must_be_http() -> None:
    """The same URL rule applies to base_url."""
    assert "openapi.base_url must be an http" in error(
        "targets: [{name: a, openapi: {spec: x.yaml, base_url: 'ftp://x'}}]", allow_launch=True
    )


@pytest.mark.parametrize("openapi", ["{}", "{spec: ''}", "x.yaml", "{spec: x.yaml, baseurl: 'http://x'}"])
def test_openapi_needs_a_spec_and_known_keys(openapi: str) -> None:
    """spec is required; other keys are checked."""
    error(f"targets: [{{name: a, openapi: {openapi}}}]", allow_launch=True)


@pytest.mark.parametrize("stdio", ["[]", "cat", "[cat, 1]", "['']"])
def test_stdio_must_be_a_non_empty_command_list(stdio: str) -> None:
    """A command is a list of strings, program first."""
    assert "stdio" in error(f"targets: [{{name: a, stdio: {stdio}}}]", allow_launch=True)


def test_transport_must_be_known() -> None:
    """Only streamable-http and sse, named in the message."""
    message = error("targets: [{name: a, url: 'http://a/mcp', transport: websocket}]")
    assert "'websocket'" in message and "'streamable-http', 'sse'" in message


def test_transport_is_refused_for_launched_targets() -> None:
    """The launcher decides how it reaches what it starts."""
    assert "`transport` applies to `url` targets only" in error(
        "targets: [{name: a, stdio: [cat], transport: sse}]", allow_launch=True
    )


@pytest.mark.parametrize("prefix", ["sometimes", "true", "1"])
def test_prefix_must_be_one_of_three(prefix: str) -> None:
    """The allowed modes are listed."""
    message = error(f"targets: []\nprefix: {prefix}\n")
    assert "'always', 'conditional', 'never'" in message


@pytest.mark.parametrize("separator", ["'-'", "'/'", "'::'", "''", "1"])
def test_separator_must_be_one_of_the_allowed(separator: str) -> None:
    """`-` is refused because target names use it; the allowed ones are listed."""
    message = error(f"targets: []\nseparator: {separator}\n")
    assert "'_', '__', '.'" in message


@pytest.mark.parametrize("separator", ["_", "__", "."])
def test_each_allowed_separator_is_accepted(separator: str) -> None:
    """All three load."""
    assert parse(f"targets: []\nseparator: '{separator}'\n").separator == separator


@pytest.mark.parametrize("value", ["0", "-1", "fast", "true", ".inf", ".nan", "[1]"])
@pytest.mark.parametrize("key", ["list", "call"])
def test_timeouts_must_be_positive_seconds(value: str, key: str) -> None:
    """Zero, negative, non-numeric, boolean and infinite values are refused, top-level and per target."""
    assert f"timeouts.{key} must be a positive number of seconds" in error(
        f"targets: []\ntimeouts: {{{key}: {value}}}\n"
    )
    message = error(f"targets: [{{name: a, url: 'http://a/mcp', timeouts: {{{key}: {value}}}}}]")
    assert f"target #1 ('a'): timeouts.{key} must be" in message


def test_integer_timeouts_become_floats() -> None:
    """YAML `2` is 2.0 seconds."""
    config = parse("targets: []\ntimeouts: {list: 2, call: 300}\n")
    assert isinstance(config.list_timeout, float) and isinstance(config.call_timeout, float)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("include", "'get_*'"),
        ("exclude", "[1]"),
        ("include", "['']"),
        ("rename", "[a, b]"),
        ("rename", "{a: 1}"),
        ("descriptions", "{a: [x]}"),
        ("forward_headers", "Authorization"),
    ],
)
def test_policy_values_must_have_the_right_shape(key: str, value: str) -> None:
    """Lists of strings and string mappings are checked, and the message shows the key."""
    assert f"target #1 ('a'): {key} must " in error(f"targets: [{{name: a, url: 'http://a/mcp', {key}: {value}}}]")


def test_renames_to_unsafe_names_are_refused() -> None:
    """Clients would see a different name than the one configured."""
    message = error("targets: [{name: a, url: 'http://a/mcp', rename: {x: 'my tool'}}]")
    assert "'x' is renamed to 'my tool'" in message


def test_two_names_renamed_to_one_are_refused() -> None:
    """The exposed names would collide."""
    message = error("targets: [{name: a, url: 'http://a/mcp', rename: {x: z, y: z}}]")
    assert "both 'x' and 'y' are renamed to 'z'" in message


@pytest.mark.parametrize("header", ["'bad header'", "'X:Y'"])
def test_forwarded_headers_must_be_header_names(header: str) -> None:
    """Spaces and colons are not allowed in a header name."""
    assert "is not an HTTP header name" in error(
        f"targets: [{{name: a, url: 'http://a/mcp', forward_headers: [{header}]}}]"
    )


@pytest.mark.parametrize("header", ["Host", "Content-Length", "Mcp-Session-Id", "connection"])
def test_headers_the_aggregator_sets_itself_cannot_be_forwarded(header: str) -> None:
    """Hop-by-hop and MCP session headers belong to the aggregator's own connection."""
    assert "cannot be forwarded" in error(f"targets: [{{name: a, url: 'http://a/mcp', forward_headers: [{header}]}}]")


@pytest.mark.parametrize(("server", "fix"), [("{name: ''}", "server.name"), ("{instructions: [1]}", "instructions")])
def test_server_settings_are_checked(server: str, fix: str) -> None:
    """A blank name or non-text instructions are refused."""
    assert fix in error(f"targets: []\nserver: {server}\n")


def test_long_values_are_shortened_in_messages() -> None:
    """A huge bad value does not flood the log."""
    message = error(f"targets: []\nprefix: {'x' * 500}\n")
    assert "..." in message and len(message) < 300


def test_load_config_names_an_unreadable_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the path."""
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"missing\.yaml.*No such file"):
        load_config(path)


def test_load_config_refuses_non_utf8(tmp_path: Path) -> None:
    """Binary junk is named as such."""
    path = tmp_path / "agg.yaml"
    path.write_bytes(b"targets: [\xff]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    """The path is the `source` of every message."""
    path = tmp_path / "agg.yaml"
    path.write_text("targets: [{name: A, url: 'http://a/mcp'}]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: target #1")):
        load_config(path)
