"""The official conformance suite through aggregator and bridge gives the same verdicts as against the server directly.

With `conditional` prefixes and a single target the aggregator exposes the fixture server's names and URIs
unchanged, so the suite's scenarios (which call tools and read resources by their own names) apply as they are.
The bridge runs in per-session mode so the fixture server sees the capabilities the aggregator declares upstream,
and its sampling and elicitation requests travel back through both hops to the suite's client.
"""

from __future__ import annotations

from pathlib import Path

from tests.aggregator.conftest import run_aggregator, wait_for, write_config
from tests.bridge.test_conformance import FIXTURE_SERVER, direct_results, run_suite
from tests.conftest import run_bridge

__all__ = ["direct_results"]  # the fixture, shared with the bridge's own conformance test


def test_the_conformance_suite_gives_the_same_verdicts_through_the_aggregator(
    direct_results: dict[str, tuple[int, int]], tmp_path: Path
) -> None:
    with run_bridge("--session-mode", "per-session", "--", *FIXTURE_SERVER) as bridge:
        config = tmp_path / "aggregator.yaml"
        write_config(config, {"fixture": bridge.mcp}, prefix="conditional")
        with run_aggregator("--config", str(config)) as aggregator:
            wait_for(aggregator, fixture="up")
            aggregated = run_suite(aggregator.mcp)
    assert set(aggregated) == set(direct_results)
    assert {scenario: failed for scenario, (_, failed) in aggregated.items() if failed} == {}
    assert sum(passed for passed, _ in aggregated.values()) >= sum(p for p, _ in direct_results.values()) - 1
