"""The suite: install the peers, run every scenario within the time budget, write the JSON and docs/benchmarks.md.

The whole suite must finish within 15 minutes on a 2-core machine, so its plan is written down here as numbers
(windows, repeats, samples) with an estimate of each phase, printed before the run and compared with what each phase
took after it. `--quick` runs every scenario with short windows (about two minutes) for development; its Markdown goes
next to its JSON, never to docs/. Every process is started through one `contenders.Processes`, so all of them are
stopped however the run ends (Ctrl-C, SIGTERM, an error).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import aggregator_runs
import bridge_runs
import lineup
import machine
import summary
from bench_common import REPO, WARMUP_SECONDS
from bridge_bench import exit_on_signals, git_revision
from contenders import Processes, start_trivial
from eraclient import ERA_CLIENT, HANDSHAKE, MODERN, worker_main
from installer import ensure_installed
from soakload import soak_main

BUDGET_S: Final = 15 * 60.0
RESULTS: Final = REPO / "bench" / "results"
DOC: Final = REPO / "docs" / "benchmarks.md"

# Allowances of the plan, measured on the 2-core machine: what a step costs besides its measured windows.
WORKER_OVERHEAD_S: Final = 0.5
"""A load-generator process: interpreter and uvloop start, sessions set up and ended."""
START_OVERHEAD_S: Final = 2.5
"""A contender started for a phase: spawn, first verified call, going quiet (FastMCP takes the longest)."""
COLD_START_S: Final = 1.5
"""One cold start measured, with the stop after it (0.3 s for plexus-bridge, 3 s for FastMCP)."""
SLOW_LIST_S_PER_TARGET: Final = 0.06
"""What a list costs per target through an aggregator that asks every target each time (FastMCP)."""
SOAK_OVERHEAD_S: Final = 3.0
"""A fresh start and the stop of each bridge in the long run."""
SOAK_SETUP_S_PER_1000: Final = 12.0
"""Setting up and ending 1,000 sessions, on average over the bridges (up to soakload.SETUP_DEADLINE for the slow)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """The suite's numbers. The defaults are the published run: about 13 minutes, within the 15-minute budget."""

    hop_seconds: float = 1.0
    """Measured window of each load run through a bridge (thousands of calls at one session)."""
    repeats: int = 3
    """Runs of each bridge at each point, in alternating order; the median of 3 shrugs off one disturbed run."""
    hop_sessions: tuple[int, ...] = (1, 16, 64)
    modern_sessions: tuple[int, ...] = (1, 16)
    cold_runs: int = 3
    ceiling_sessions: tuple[int, ...] = (1, 64)
    ceiling_clients: tuple[str, ...] = ("raw", ERA_CLIENT[HANDSHAKE], ERA_CLIENT[MODERN])
    targets: tuple[int, ...] = (1, 10, 50)
    aggregator_seconds: float = 0.5
    """Time budget of each list or call measurement (at least aggregator_runs.MIN_SAMPLES requests)."""
    aggregator_repeats: int = 2
    """Runs of each aggregator at each target count: FastMCP's lists over 50 targets take seconds each."""
    hung_seconds: float = 2.0
    hung_timeout: float = 10.0
    """Seconds a list may take while a target hangs before it counts as waiting for it; a new session gets half."""
    soak_sessions: int = 1000
    soak_seconds: float = 60.0
    soak_interval: float = 4.0
    """Seconds between one session's calls in the long run: an agent calling a tool every few seconds, and under the
    5 s keep-alive timeout of uvicorn and Node, so connections stay open (1,000 sessions offer 250 calls/s)."""

    def estimates(self, bridges: int, aggregators: int) -> dict[str, float]:
        """Seconds each phase should take, from the plan's numbers and the allowances above."""
        run = self.hop_seconds + WARMUP_SECONDS + WORKER_OVERHEAD_S
        hop_runs = self.repeats * (len(self.hop_sessions) + len(self.modern_sessions))
        measurement = 2 * self.aggregator_seconds  # a list and a call measurement
        slow_lists = sum(aggregator_runs.MIN_SAMPLES * SLOW_LIST_S_PER_TARGET * n for n in self.targets)
        hung_worst = 2.5 * self.hung_timeout  # a list not answered, the DELETE after it, a new session not opened
        return {
            "ceiling": len(self.ceiling_clients) * len(self.ceiling_sessions) * run,
            "cold_start": bridges * self.cold_runs * COLD_START_S,
            "hop": bridges * (START_OVERHEAD_S + hop_runs * run),
            "aggregators": len(self.targets) * aggregators * (START_OVERHEAD_S + 2 * self.aggregator_repeats
                                                              * measurement) + self.aggregator_repeats * slow_lists,
            "hung_target": aggregators * (START_OVERHEAD_S + self.hung_seconds) + hung_worst,
            "sessions_1000": bridges * (SOAK_OVERHEAD_S + SOAK_SETUP_S_PER_1000 * self.soak_sessions / 1000
                                        + WARMUP_SECONDS + self.soak_seconds),
        }  # fmt: skip


QUICK: Final = Plan(
    hop_seconds=0.3, repeats=2, hop_sessions=(1, 16), modern_sessions=(1,), cold_runs=1, ceiling_sessions=(16,),
    targets=(1, 10), aggregator_seconds=0.2, aggregator_repeats=2, hung_seconds=0.5, hung_timeout=3.0,
    soak_sessions=200, soak_seconds=3.0, soak_interval=1.0,
)  # fmt: skip


def _print_plan(plan: Plan, estimates: dict[str, float]) -> None:
    print("plan (estimated seconds per phase):", file=sys.stderr)
    for phase, seconds in estimates.items():
        print(f"  {phase:15s} {seconds:6.0f}", file=sys.stderr)
    total = sum(estimates.values())
    verdict = "within" if total <= BUDGET_S else "OVER"
    print(f"  {'total':15s} {total:6.0f}  ({verdict} the {BUDGET_S:.0f} s budget)", file=sys.stderr)


def _timed(durations: dict[str, float], phase: str, step: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        return step()
    finally:
        durations[phase] = time.perf_counter() - started
        print(f"{phase}: {durations[phase]:.0f} s", file=sys.stderr)


def run_suite(procs: Processes, plan: Plan, versions: dict[str, str], durations: dict[str, float]) -> dict[str, Any]:
    bridges = lineup.bridges(versions)
    aggregators = lineup.aggregators(versions)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        workdir = Path(work)

        def ceiling() -> list[dict[str, Any]]:
            trivial = start_trivial(procs)
            try:
                return [
                    bridge_runs.run_worker(procs, client, trivial.url, sessions, plan.hop_seconds,
                                           {"server": trivial.proc.pid})
                    for client in plan.ceiling_clients
                    for sessions in plan.ceiling_sessions
                ]  # fmt: skip
            finally:
                trivial.stop(procs)

        results["ceiling"] = _timed(durations, "ceiling", ceiling)
        results["cold_start"] = _timed(
            durations, "cold_start", lambda: bridge_runs.cold_starts(procs, bridges, plan.cold_runs, workdir)
        )
        points = {HANDSHAKE: plan.hop_sessions, MODERN: plan.modern_sessions}
        results["hop"] = _timed(
            durations, "hop", lambda: bridge_runs.hop(procs, bridges, workdir, points, plan.repeats, plan.hop_seconds)
        )
        results["aggregators"] = _timed(
            durations,
            "aggregators",
            lambda: aggregator_runs.aggregation(
                procs,
                aggregators,
                workdir,
                plan.targets,
                (HANDSHAKE, MODERN),
                plan.aggregator_repeats,
                plan.aggregator_seconds,
            ),
        )
        results["hung_target"] = _timed(
            durations,
            "hung_target",
            lambda: aggregator_runs.hung_target(procs, aggregators, workdir, plan.hung_seconds, plan.hung_timeout),
        )
        results["sessions_1000"] = _timed(
            durations,
            "sessions_1000",
            lambda: bridge_runs.soak(
                procs, bridges, workdir, plan.soak_sessions, plan.soak_seconds, plan.soak_interval
            ),
        )
    results["contenders"] = {
        group: [
            {"key": c.key, "label": c.label, "version": c.version, "plexus": c.plexus,
             "command": lineup.command_line(c)}
            for c in members
        ]
        for group, members in (("bridges", bridges), ("aggregators", aggregators))
    }  # fmt: skip
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every scenario, short windows (about 2 minutes)")
    parser.add_argument("--soak-seconds", type=float, help="length of the 1,000-session run (default 60)")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/peers[-quick].json)")
    parser.add_argument("--doc", type=Path, help="Markdown table (default docs/benchmarks.md; quick: next to the JSON)")
    parser.add_argument("--role", choices=["load", "soak"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "load":
        worker_main(args.config)
        return 0
    if args.role == "soak":
        soak_main(args.config)
        return 0
    plan = QUICK if args.quick else Plan()
    if args.soak_seconds is not None:
        plan = replace(plan, soak_seconds=args.soak_seconds)
    name = "peers-quick" if args.quick else "peers"
    out: Path = args.out or RESULTS / f"{name}.json"
    doc: Path = args.doc or (RESULTS / f"{name}.md" if args.quick else DOC)

    started = time.perf_counter()
    versions = ensure_installed()
    description = machine.describe()
    estimates = plan.estimates(len(lineup.bridges(versions)), len(lineup.aggregators(versions)))
    _print_plan(plan, estimates)
    durations: dict[str, float] = {}
    procs = Processes()
    try:
        with exit_on_signals():
            results = run_suite(procs, plan, versions, durations)
    except KeyboardInterrupt:
        print("interrupted: stopping every process started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    report: dict[str, Any] = {
        "machine": description,
        "revision": git_revision(),
        "versions": versions,
        "plan": {**asdict(plan), "quick": args.quick, "estimates_s": estimates},
        "durations_s": {**durations, "total": time.perf_counter() - started},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(summary.render(report))
    print(f"wrote {out} and {doc} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 1 if summary.plexus_failed(report) else 0
