"""The official conformance suite through the bridge gives the same verdicts as against the same server directly.

"Directly" is the fixture server served by the SDK's own streamable-HTTP transport; through the bridge it runs as a
stdio child. The bridge answers plain JSON where the server streams SSE, so the suite's optional SSE check reports
INFO instead of a pass there: verdicts (no failure, same scenarios) are compared, not counts of optional checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.conftest import FIXTURES, free_port, node_bin, run_bridge

FIXTURE_SERVER = [sys.executable, str(FIXTURES / "servers" / "conformance_server.py")]
SUITE_TIMEOUT = 300
"""Seconds for one full suite run; it takes a few seconds here."""

SUMMARY_LINE = re.compile(r"^[✓✗] (?P<scenario>[\w-]+): (?P<passed>\d+) passed, (?P<failed>\d+) failed$", re.M)


def run_suite(url: str) -> dict[str, tuple[int, int]]:
    """Run every server scenario of the suite against `url`; return passed/failed counts per scenario."""
    completed = subprocess.run(
        [node_bin("conformance"), "server", "--url", url],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
    )
    results = {m["scenario"]: (int(m["passed"]), int(m["failed"])) for m in SUMMARY_LINE.finditer(completed.stdout)}
    assert results, completed.stdout[-2000:] + completed.stderr[-2000:]
    return results


@pytest.fixture(scope="module")
def direct_results() -> Iterator[dict[str, tuple[int, int]]]:
    port = free_port()
    server = subprocess.Popen([*FIXTURE_SERVER, "--transport", "http", "--port", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "fixture server did not start"
                time.sleep(0.1)
        yield run_suite(f"http://127.0.0.1:{port}/mcp")
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("mode", ["shared", "per-session"])
def test_the_conformance_suite_gives_the_same_verdicts_through_the_bridge(
    mode: str, direct_results: dict[str, tuple[int, int]]
) -> None:
    """Every server scenario passes through the bridge in both session modes, as it does directly."""
    assert {s: f for s, (_, f) in direct_results.items() if f} == {}, "the fixture server itself must pass"
    # The suite opens about 30 sessions and ends none of them: room for one server each in per-session mode.
    with run_bridge("--session-mode", mode, "--max-children", "64", "--", *FIXTURE_SERVER) as bridge:
        bridged = run_suite(bridge.mcp)
    assert set(bridged) == set(direct_results)
    assert {scenario: failed for scenario, (_, failed) in bridged.items() if failed} == {}
    assert sum(passed for passed, _ in bridged.values()) >= sum(p for p, _ in direct_results.values()) - 1
