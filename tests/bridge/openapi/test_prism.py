"""Real REST APIs mocked by Prism, which checks every request against the spec, behind `plexus-bridge openapi`.

Each tool is called once with arguments generated from its own `inputSchema` (hypothesis-jsonschema, derandomized,
so every run sends the same requests); the requests the bridge builds from them must be ones Prism accepts. Prism
answers an invalid request with 422 or 400 (its own problem+json, or the spec's error response) whatever its
`--errors` flag says; that flag only adds 500s for Prism's own responses breaking the spec (GitHub's examples often
do), so it is left off.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import types
import warnings
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx2
import pydantic
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import _from_schema, from_schema
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Tool

from bridge.openapi.tools import build_operations
from tests.conftest import FIXTURES, ROOT, RunningBridge, free_port, node_bin, stop_process

pytestmark = pytest.mark.anyio

GITHUB_SPEC: Final = ROOT / "tests" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
GITHUB_OPERATIONS: Final = 1223
PETSTORE_SPEC: Final = FIXTURES / "specs" / "petstore-swagger2.yaml"
CONCURRENCY: Final = 16
"""Tool calls in flight at once, all through one client session."""
PRISM_READY_TIMEOUT: Final = 90.0
"""Seconds Prism gets to load a spec; GitHub's 13 MB takes about 11 s here."""
EXAMPLES: Final = 3
"""Examples Hypothesis generates per schema; the last is used. The first is always the simplest possible value
(empty strings, optional arguments left out), so a later one exercises more of the request building."""
TEXT_ONLY: Final = {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,20}[.]ya?ml$"}
"""A value for a path or query parameter whose schema is `oneOf: [integer, string]` (GitHub's `workflow_id`: an id or
a file name): Prism checks the text of the URL against each branch, so `7` matches both and fails `oneOf`."""
JS_SAFE_INTEGER: Final = 2**53 - 1
"""Prism runs on JavaScript numbers and rejects integers beyond this; the specs set no bound of their own."""
INTEGER_FORMATS: Final = {"int32": 2**31 - 1, "int64": JS_SAFE_INTEGER}
MAX_ITEMS: Final = 2
"""Most items generated for an array: enough to exercise serialization, few enough to keep generation fast."""
DATA: Final = frozenset({"const", "enum", "default", "examples", "example"})
"""Keywords whose value is data, not a schema: left alone when a schema is adapted for generation."""
REFUSED: Final = re.compile(r"^HTTP 4\d\d ")
"""How a tool result reports that the API refused the request (the bridge's error text)."""
NOT_SENT: Final = re.compile(r"nothing was sent|see its log|Could not reach")
"""How a tool result reports a call that sent no request: the bridge refused the arguments, failed, or found no API.

Any other error result came after Prism accepted the request (a 5xx when Prism cannot serialize its answer, or
whatever the bridge makes of an answer that breaks the spec)."""


# hypothesis-jsonschema 0.23.1 (the latest) draws object properties with `many.more()`, which Hypothesis replaced by
# iteration (`with many(...) as elements: for _ in elements:`); this adapter gives it the old interface back, for
# its object strategy only, until a release of hypothesis-jsonschema catches up.
class _LegacyMany:
    """The `more()`/`reject()` interface of Hypothesis's old `many`, on top of the new one."""

    _DONE: Final = object()

    def __init__(self, data: Any, **options: Any) -> None:
        self._many = conjecture_utils.many(data, **options)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        if next(self._elements, self._DONE) is self._DONE:
            self._many.__exit__(None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


if not hasattr(conjecture_utils.many, "more"):
    vars(_from_schema)["cu"] = types.SimpleNamespace(many=_LegacyMany)


@dataclass
class Prism:
    """A running `prism mock`; its log (stdout and stderr) goes to `log_path`."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def wait_ready(self, timeout: float = PRISM_READY_TIMEOUT) -> None:
        """Poll until Prism answers HTTP at all (a 404 for `/` means it has loaded the spec)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx2.get(self.url + "/", timeout=2)
                return
            except httpx2.TransportError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"prism exited with {self.process.returncode}:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"prism not ready within {timeout} s:\n{self.log()[-2000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_prism(spec: Path, log_path: Path, *, verbosity: str = "info") -> Iterator[Prism]:
    """Start `prism mock SPEC` on a free loopback port without waiting for it (loading GitHub's spec takes a while).

    At `info` Prism logs its verdict on each request; at `error`, only what it finds wrong (and it runs faster).
    """
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node_bin("prism"), "mock", "-h", "127.0.0.1", "-p", str(port), "-v", verbosity, str(spec)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        yield Prism(f"http://127.0.0.1:{port}", process, log_path)
    finally:
        stop_process(process)


@contextlib.contextmanager
def run_openapi_bridge(*args: str, log_path: Path, env: dict[str, str] | None = None) -> Iterator[RunningBridge]:
    """Run `python -m bridge openapi ARGS` on a free loopback port until ready; its log goes to `log_path`."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "openapi", "--port", str(port), *args],
            stderr=log,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
    bridge = RunningBridge(f"http://127.0.0.1:{port}", process)
    try:
        try:
            bridge.wait_ready()
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{log_path.read_text(errors='replace')[-2000:]}") from None
        yield bridge
    finally:
        stop_process(process)


def _for_generation(schema: Any) -> Any:
    """A copy of `schema` that makes the generator draw values as the bridge and Prism read the schema.

    - Integers stay within their OpenAPI `format` and what JavaScript holds exactly: JSON Schema takes `format` as
      an annotation, so the generator would not keep an `int32` within 32 bits, and Prism checks both.
    - Patterns are ECMA-262 regexes, where `\\d` and `\\w` are ASCII only: the generator runs them with `re.ASCII`.
    - Arrays hold at most `MAX_ITEMS` items.
    """
    if isinstance(schema, list):
        return [_for_generation(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: value if key in DATA else _for_generation(value) for key, value in schema.items()}
    if isinstance(schema.get("pattern"), str):
        bounded["pattern"] = "(?a)" + schema["pattern"]
    kind = schema.get("type")
    if kind == "array" or (isinstance(kind, list) and "array" in kind):
        bounded["maxItems"] = max(min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS), schema.get("minItems", 0))
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        limit = INTEGER_FORMATS.get(str(schema.get("format")), JS_SAFE_INTEGER)
        bounded.setdefault("minimum", -limit - (limit != JS_SAFE_INTEGER))
        bounded.setdefault("maximum", limit)
    return bounded


def _draw(schema: dict[str, Any]) -> dict[str, Any]:
    """The last of `EXAMPLES` values Hypothesis generates for `schema`, the same on every run."""
    drawn: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(from_schema(schema))
    def keep(value: dict[str, Any]) -> None:
        drawn.append(value)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a `pattern` Python cannot compile: the generator would ignore it
        keep()
    return drawn[-1]


def generate_arguments(input_schema: dict[str, Any], text_only: Collection[str] = ()) -> dict[str, Any]:
    """Arguments for a tool, generated from its input schema: every argument it declares, the same on every run.

    Only the declared arguments are generated (the schema allows others, which the bridge ignores); when giving all
    of them is impossible (exclusive alternatives), the optional ones are left to the generator. The `text_only`
    arguments get a value only the string branch of their schema matches. Raises whatever the generator raises for a
    schema it cannot handle.
    """
    schema = _for_generation(input_schema)
    schema["additionalProperties"] = False
    for name in text_only:
        schema["properties"][name] = TEXT_ONLY
    try:
        return _draw({**schema, "required": sorted(schema.get("properties") or {})})
    except Exception:  # unsatisfiable with every argument: fall back to the tool's own required ones
        return _draw(schema)


async def list_all_tools(client: Client) -> tuple[list[Tool], int]:
    """Every tool, following `nextCursor`; and how many pages that took."""
    tools: list[Tool] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return tools, pages


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", f"<{block.type}>") for block in result.content)


@dataclass
class Outcome:
    """What came of calling one tool."""

    arguments: dict[str, Any]
    error: str | None
    """The error text of a failed call, None when the API answered with success."""
    output_rejected: bool = False
    """The API answered with success, but the SDK client refused the result's structured content."""


async def call_once(client: Client, name: str, arguments: dict[str, Any]) -> Outcome:
    """Call one tool and tell how it went."""
    try:
        result = await client.call_tool(name, arguments)
    except (RuntimeError, pydantic.ValidationError) as exc:
        if "structured" not in str(exc).lower():
            raise
        return Outcome(arguments, None, output_rejected=True)
    return Outcome(arguments, text_of(result) if result.is_error else None)


async def generate_and_call(
    client: Client, tools: list[Tool], prism: Prism, text_only: Mapping[str, Collection[str]]
) -> tuple[dict[str, Outcome], dict[str, str]]:
    """Call each tool once with generated arguments, `CONCURRENCY` at a time through the one session; and why no
    arguments could be generated for the others.

    A worker thread generates while Prism starts and while the calls run: both take tens of seconds for GitHub.
    """
    outcomes: dict[str, Outcome] = {}
    impossible: dict[str, str] = {}
    send, receive = anyio.create_memory_object_stream[tuple[str, dict[str, Any]]](max_buffer_size=len(tools))

    def generate() -> None:
        try:
            for tool in tools:
                try:
                    arguments = generate_arguments(tool.input_schema, text_only.get(tool.name, ()))
                except Exception as exc:  # the generator's limits, whatever their type: counted and reported
                    impossible[tool.name] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    continue
                anyio.from_thread.run_sync(send.send_nowait, (tool.name, arguments))
        finally:
            anyio.from_thread.run_sync(send.close)

    async def call(calls: MemoryObjectReceiveStream[tuple[str, dict[str, Any]]]) -> None:
        async with calls:
            async for name, arguments in calls:
                outcomes[name] = await call_once(client, name, arguments)

    async with anyio.create_task_group() as group:
        group.start_soon(partial(anyio.to_thread.run_sync, generate, abandon_on_cancel=True))
        await anyio.to_thread.run_sync(prism.wait_ready)
        async with receive:
            for _ in range(CONCURRENCY):
                group.start_soon(call, receive.clone())
    return outcomes, impossible


def report(failures: dict[str, Outcome], limit: int = 15) -> str:
    """The first failures, each with its arguments and the error, for an assertion message."""
    lines = []
    for name, outcome in sorted(failures.items())[:limit]:
        lines.append(f"- {name}({json.dumps(outcome.arguments, ensure_ascii=True)[:300]})")
        lines.append(f"    -> {(outcome.error or '')[:400]}")
    if len(failures) > limit:
        lines.append(f"- ... and {len(failures) - limit} more")
    return "\n".join(lines)


def prism_complaints(log: str) -> str:
    """Prism's request-validation messages, values blanked and counted: the causes at a glance."""
    messages = re.findall(r"\[VALIDATOR\] ✖\s+error\s+(?=\S)(?!Violation:)(.*)", log)
    shapes = Counter(re.sub(r"parameter \S+|property \S+|'[^']*'", "…", message).strip() for message in messages)
    return "\n".join(f"  {count} x {shape}" for shape, count in shapes.most_common(10))


@dataclass
class GitHubQuirks:
    """What GitHub's spec asks of Prism that Prism cannot do, found in the spec itself."""

    redirecting: set[str]
    """Tools whose operation declares no 2xx response, only a 302 to a real GitHub host: Prism answers with that
    redirect and the bridge follows it off this machine, so they are not called."""
    text_only: dict[str, set[str]]
    """Per tool, the path and query arguments whose schema is `oneOf: [integer, string]` (see `TEXT_ONLY`)."""


def github_quirks() -> GitHubQuirks:
    """Read from GitHub's spec and the operations the bridge makes of it."""
    document = json.loads(GITHUB_SPEC.read_bytes())
    quirks = GitHubQuirks(set(), {})
    for op in build_operations(document):
        name = op.tool["name"]
        if not any(str(code).startswith("2") for code in document["paths"][op.path][op.method.lower()]["responses"]):
            quirks.redirecting.add(name)
        for param in op.parameters:
            schema = op.tool["inputSchema"]["properties"][param.argument]
            schema = (
                schema["allOf"][0] if len(schema.get("allOf") or ()) == 1 else schema
            )  # the bridge's non-empty wrap
            branches = schema.get("oneOf") or ()
            types = {branch.get("type") for branch in branches}
            if param.location in ("path", "query") and {"integer", "string"} <= types:
                quirks.text_only.setdefault(name, set()).add(param.argument)
    return quirks


async def test_every_github_operation_sends_a_request_prism_accepts(tmp_path: Path) -> None:
    """All 1,223 GitHub tools, called with arguments generated from their inputSchema, send requests Prism finds valid.

    GitHub's spec declares no security scheme, so Prism's only reason to refuse is a request the spec does not allow.
    """
    quirks = github_quirks()
    not_called = quirks.redirecting
    with (
        run_prism(GITHUB_SPEC, tmp_path / "prism.log", verbosity="error") as prism,
        run_openapi_bridge(
            "--spec", str(GITHUB_SPEC), "--base-url", prism.url, log_path=tmp_path / "bridge.log"
        ) as bridge,
    ):
        with anyio.fail_after(170):
            async with Client(bridge.mcp, mode="legacy") as client:
                tools, _ = await list_all_tools(client)
                assert len(tools) == GITHUB_OPERATIONS
                to_call = [tool for tool in tools if tool.name not in not_called]
                outcomes, impossible = await generate_and_call(client, to_call, prism, quirks.text_only)
        log = prism.log()
    assert len(not_called) <= 8, f"operations without a 2xx response: {sorted(not_called)}"
    assert len(impossible) <= 10, f"arguments could not be generated for {len(impossible)} tools: {impossible}"
    errors = {name: outcome for name, outcome in outcomes.items() if outcome.error is not None}
    refused = {name: outcome for name, outcome in errors.items() if REFUSED.match(outcome.error or "")}
    not_sent = {name: outcome for name, outcome in errors.items() if NOT_SENT.search(outcome.error or "")}
    answered_with_error = sorted(errors.keys() - refused.keys() - not_sent.keys())
    output_rejected = sorted(name for name, outcome in outcomes.items() if outcome.output_rejected)
    summary = (
        f"{len(outcomes)} calls: {len(refused)} refused by Prism, {len(not_sent)} never sent; accepted by Prism but "
        f"an error result: {len(answered_with_error)} {answered_with_error[:10]}, structured content refused by the "
        f"SDK client: {len(output_rejected)}; arguments not generated for {len(impossible)} {sorted(impossible)}; "
        f"not called (redirects off this machine): {len(not_called)}"
    )
    assert not refused and not not_sent, (
        f"{summary}\nPrism's complaints:\n{prism_complaints(log)}\nRefused:\n{report(refused)}\n"
        f"Never sent (an 'Invalid arguments' error means the bridge refused what its own schema allows):\n"
        f"{report(not_sent)}"
    )


@pytest.fixture(scope="module")
def github_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBridge]:
    """The bridge serving GitHub's spec, pointed at a closed port: for listing only."""
    log_path = tmp_path_factory.mktemp("github") / "bridge.log"
    closed = f"http://127.0.0.1:{free_port()}"
    with run_openapi_bridge("--spec", str(GITHUB_SPEC), "--base-url", closed, log_path=log_path) as bridge:
        yield bridge


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_github_tools_are_all_listed_across_pages_in_both_eras(github_bridge: RunningBridge, mode: str) -> None:
    """tools/list pages (100 a page) add up to all 1,223 operations, each name once, in either protocol era."""
    with anyio.fail_after(30):
        async with Client(github_bridge.mcp, mode=mode) as client:
            tools, pages = await list_all_tools(client)
            assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    names = [tool.name for tool in tools]
    assert len(names) == GITHUB_OPERATIONS
    assert len(set(names)) == GITHUB_OPERATIONS
    assert pages == -(-GITHUB_OPERATIONS // 100)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) for name in names)


def prism_verdict(prism: Prism, index: int, timeout: float = 5.0) -> str | None:
    """Prism's log of the `index`-th request it received (0-based) once it holds a verdict; None if there is none."""
    deadline = time.monotonic() + timeout
    while True:
        requests = prism.log().split("Request received")[1:]
        done = len(requests) > index and re.search("validation rules|Request terminated", requests[index])
        if done or time.monotonic() > deadline:
            return requests[index] if len(requests) > index else None
        time.sleep(0.05)


async def test_every_petstore_swagger2_operation_sends_a_request_prism_accepts(tmp_path: Path) -> None:
    """The Swagger 2.0 petstore, converted by the bridge and read as 2.0 by Prism: each generated call is valid.

    Prism enforces the spec's security: `api_key` comes from PLEXUS_AUTH_API_KEY, and the OAuth2 implicit flow (no
    token the bridge could fetch) from the client's Authorization header, passed on with --forward-headers.
    """
    with (
        run_prism(PETSTORE_SPEC, tmp_path / "prism.log") as prism,
        run_openapi_bridge(
            "--spec", str(PETSTORE_SPEC), "--base-url", prism.url, "--forward-headers", "Authorization",
            log_path=tmp_path / "bridge.log", env={"PLEXUS_AUTH_API_KEY": "special-key"},
        ) as bridge,
    ):  # fmt: skip
        prism.wait_ready()
        refused: dict[str, str] = {}
        with anyio.fail_after(60):
            async with (
                httpx2.AsyncClient(headers={"Authorization": "Bearer petstore-token"}) as http,
                Client(streamable_http_client(bridge.mcp, http_client=http), mode="legacy") as client,
            ):
                tools, _ = await list_all_tools(client)
                assert len(tools) == 20
                received = prism.log().count("Request received")
                for tool in tools:
                    arguments = generate_arguments(tool.input_schema)
                    result = await client.call_tool(tool.name, arguments)
                    verdict = await anyio.to_thread.run_sync(prism_verdict, prism, received)
                    if verdict is None or "The request passed the validation rules" not in verdict:
                        complaints = re.findall(
                            r"✖\s+error\s+(?=\S)(?!Violation:)(.*)", verdict or "no request reached Prism"
                        )
                        refused[tool.name] = f"{json.dumps(arguments)[:200]} -> {complaints} ({text_of(result)[:200]})"
                    received += verdict is not None
    assert not refused, "Prism refused:\n" + "\n".join(f"- {name}: {why}" for name, why in refused.items())


EDGE_CASES_SPEC: Final = FIXTURES / "specs" / "request-edge-cases.yaml"


@dataclass
class EdgeCases:
    prism: Prism
    bridge: RunningBridge


@pytest.fixture(scope="module")
def edge_cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeCases]:
    """request-edge-cases.yaml mocked by Prism, and the bridge in front of it."""
    logs = tmp_path_factory.mktemp("edge-cases")
    with (
        run_prism(EDGE_CASES_SPEC, logs / "prism.log") as prism,
        run_openapi_bridge(
            "--spec", str(EDGE_CASES_SPEC), "--base-url", prism.url, log_path=logs / "bridge.log"
        ) as bridge,
    ):
        prism.wait_ready()
        yield EdgeCases(prism, bridge)


async def problem_with_call(edge_cases: EdgeCases, tool: str, arguments: dict[str, Any]) -> str | None:
    """None when the call sent a request Prism accepts, or sent nothing and said why; else what went wrong."""
    received = edge_cases.prism.log().count("Request received")
    with anyio.fail_after(20):
        async with Client(edge_cases.bridge.mcp, mode="legacy") as client:
            result = await client.call_tool(tool, arguments)
    text = text_of(result)
    # The bridge answers only after Prism has: a request Prism received is in its log by now.
    verdict = await anyio.to_thread.run_sync(partial(prism_verdict, edge_cases.prism, received, timeout=1.0))
    if verdict is None:
        if not result.is_error or "see its log" in text:
            return f"nothing was sent, and the result does not say why: {text!r}"
        return None
    if "The request passed the validation rules" in verdict:
        return None
    complaints = re.findall(r"✖\s+error\s+(?=\S)(?!Violation:)(.*)", verdict)
    return f"Prism refused the request: {complaints}; the tool said: {text[:300]!r}"


async def test_an_empty_path_parameter_never_reaches_the_api_as_an_empty_segment(edge_cases: EdgeCases) -> None:
    """`username: ""` would make `/users//keys`, a path no operation has: the bridge must refuse it, not send it."""
    assert await problem_with_call(edge_cases, "listKeys", {"username": ""}) is None


@pytest.mark.parametrize("username", [".", ".."])
async def test_a_dot_path_parameter_cannot_address_another_path(edge_cases: EdgeCases, username: str) -> None:
    """`/users/../keys` is `/keys` to any server: a value of `.` or `..` must not reach the path as it is."""
    assert await problem_with_call(edge_cases, "listKeys", {"username": username}) is None


async def test_an_empty_required_query_parameter_is_not_sent_empty(edge_cases: EdgeCases) -> None:
    """`q` is required and does not `allowEmptyValue`: `?q=` counts as missing (OpenAPI 3.0, and Prism)."""
    assert await problem_with_call(edge_cases, "search", {"q": ""}) is None


async def test_a_null_query_parameter_is_not_sent_as_the_word_none(edge_cases: EdgeCases) -> None:
    """A nullable query parameter given null: `?state=None` is not a value the API allows."""
    assert await problem_with_call(edge_cases, "listAlerts", {"state": None}) is None


async def test_the_alternatives_a_body_requires_are_kept_in_the_input_schema(edge_cases: EdgeCases) -> None:
    """The body needs `state` or `assignees` (anyOf); a call with neither must be refused, not sent as `{}`."""
    assert await problem_with_call(edge_cases, "updateAlert", {"number": 1}) is None


async def test_a_multipart_form_body_is_sent_as_multipart(edge_cases: EdgeCases) -> None:
    """aiohttp's FormData of plain fields defaults to urlencoded; Prism answers 415 to that."""
    assert await problem_with_call(edge_cases, "upload", {"name": "report.txt", "note": "weekly"}) is None


async def test_a_header_value_with_a_control_character_is_refused_naming_the_argument(edge_cases: EdgeCases) -> None:
    """HTTP cannot carry a newline in a header: the result must say which argument, not 'see its log'."""
    problem = await problem_with_call(edge_cases, "trace", {"X-Trace": "line one\nline two"})
    assert problem is None
    with anyio.fail_after(20):
        async with Client(edge_cases.bridge.mcp, mode="legacy") as client:
            result = await client.call_tool("trace", {"X-Trace": "line one\nline two"})
    assert result.is_error and "X-Trace" in text_of(result)


@pytest.mark.parametrize("tool", ["thingAnsweredWithAList", "thingWithAWrongField"])
async def test_a_response_that_breaks_its_output_schema_still_reaches_the_client(
    edge_cases: EdgeCases, tool: str
) -> None:
    """APIs do not always answer as their spec says; the SDK client must still get the body (as a result or an error
    result, the bridge's choice), not raise."""
    with anyio.fail_after(20):
        async with Client(edge_cases.bridge.mcp, mode="legacy") as client:
            await list_all_tools(client)  # the client now checks results against the tools' output schemas
            result = await client.call_tool(tool, {})
    assert re.search(r"\[1, ?2\]|seven", text_of(result))
