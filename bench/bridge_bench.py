"""Benchmark of the stdio bridge (`plexus-bridge stdio`) with the trivial echo server behind it.

What is measured, and why:

1. Latency of `tools/call echo` at one session, p50/p99: through the bridge (HTTP client -> bridge -> stdio child and
   back) and against the same echo server driven directly over its stdin/stdout. The difference is what the bridge
   (plus HTTP) costs per call. The same HTTP client against a do-nothing HTTP server gives the client's own share.
2. Throughput (calls/s) through the bridge at 1, 16 and 64 concurrent sessions, each session a separate MCP client
   (see `loadgen.py`).
3. The same load through the bare forwarder (`bare_forwarder.py`, the least a Python stdio forwarder can do on this
   machine), run back to back with the bridge at every point, so drift affects both alike. The bridge/bare ratio of
   calls/s at 16 sessions and the p50 difference at 1 session are what the bridge's features cost.
4. Cold start: time from spawning `plexus-bridge` to `/readyz` 200 and to the first successful `tools/call`, next to
   the echo server's own start (spawn to `initialize` answered over stdio), so the bridge's share is visible.
5. Peak RSS (`VmHWM`) of the bridge process alone (not its child) after the load, and of the bare forwarder.
6. The load generator's ceiling: the same generator against a trivial HTTP server that answers every call at once
   (`trivial_server.py`). If the bridge number is well below this, the generator is not the bottleneck. CPU use of
   the generator, the server, its child and everything else on the machine during each window is read from
   `os.times`, `/proc/PID/stat` and `/proc/stat`, to show which process is CPU-bound and whether a neighbour
   disturbed the run.

Every point runs with each HTTP client of the generator: `raw` (lean, so the server's own limit shows) and aiohttp
(a typical Python client; it saturates a core below the bridge's throughput). Every reply is verified (HTTP 200,
JSON-RPC id, echoed text unique per session and call); any failure is reported and makes the script exit 1.

The generator runs in its own process (this script, re-invoked with `--role load --config JSON`) on uvloop; the
servers run in their own processes (the trivial one as `--role trivial --port PORT`). Everything binds to 127.0.0.1
on free ports, and every subprocess is stopped at the end, also on Ctrl-C or an error.

Usage: python bench/bridge_bench.py [--seconds N] [--out FILE] [--sessions 1,16,64] [--clients raw,aiohttp]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Final

from bench_common import CALL_TIMEOUT, REPO, WARMUP_SECONDS, median
from contenders import (
    BENCH_SCRIPT,
    READY_TIMEOUT,
    Processes,
    Server,
    measure_child_start,
    measure_cold_start,
    measure_direct_stdio,
    start_bare,
    start_bridge,
    start_trivial,
)
from loadgen import CLIENTS, load_main
from report import CHILD_START_RUNS, COLD_START_RUNS, CONTENDERS, LATENCY_SESSIONS, compare, render
from trivial_server import trivial_main

DEFAULT_OUT: Final = REPO / "bench" / "results" / "bridge.json"
DEFAULT_SECONDS: Final = 5.0
"""Length of each measured window (one per throughput point and for the direct stdio latency)."""
DEFAULT_SESSIONS: Final = (1, 16, 64)
CEILING_SESSIONS: Final = (1, 16)
"""Session counts at which the generator is also run against the trivial server."""
WORKER_SLACK: Final = 30.0
"""Seconds a load-generator process may run past its planned end before it is killed as hung."""


def run_generator(
    procs: Processes, client: str, url: str, sessions: int, seconds: float, watch: dict[str, int]
) -> dict[str, Any]:
    """One load-generator process at `sessions` sessions; returns its verified result."""
    config = json.dumps({"client": client, "url": url, "sessions": sessions, "seconds": seconds, "watch": watch})
    argv = [sys.executable, str(BENCH_SCRIPT), "--role", "load", "--config", config]
    proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    failed = {"client": client, "sessions": sessions, "failures": 1}
    try:
        out, err = proc.communicate(timeout=seconds + WARMUP_SECONDS + CALL_TIMEOUT + WORKER_SLACK)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        return {**failed, "failure_samples": ["load generator hung (killed)"]}
    procs.stop(proc)
    if err:
        sys.stderr.write(err.decode(errors="replace"))
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {**failed, "failure_samples": [f"load generator exited with {proc.returncode}: {last[0]}"]}
    result: dict[str, Any] = json.loads(out)
    return result


def measure_cold_starts(procs: Processes) -> dict[str, Any]:
    print(f"cold start: echo server alone x{CHILD_START_RUNS}, bridge x{COLD_START_RUNS} ...", file=sys.stderr)
    child_starts = [measure_child_start(procs) for _ in range(CHILD_START_RUNS)]
    cold = [measure_cold_start(procs) for _ in range(COLD_START_RUNS)]
    child_ms, ready_ms = median(child_starts), median([c["ready_ms"] for c in cold])
    return {
        "child_initialize_ms": child_ms,
        "bridge_ready_ms": ready_ms,
        "bridge_first_call_ms": median([c["first_call_ms"] for c in cold]),
        "bridge_share_ms": ready_ms - child_ms,
        "runs": {"child_initialize_ms": child_starts, "bridge": cold},
    }


def run_forwarders(
    procs: Processes, seconds: float, session_counts: Sequence[int], clients: Sequence[str], runs: Iterator[int]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The bridge and the bare forwarder, both up for the whole phase, loaded back to back at every point.

    Both are left to go quiet after they are ready (the bridge loads in the background after /readyz). Which of the
    two goes first alternates from point to point, so neither always runs on the warmer (or more disturbed) machine.
    Returns the results and the memory of each, keyed "bridge" and "bare".
    """
    servers: dict[str, Server] = {"bridge": start_bridge(procs), "bare": start_bare(procs)}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    try:
        deadline = time.perf_counter() + READY_TIMEOUT
        for server in servers.values():
            server.wait_ready(deadline)
        ready_to_quiet = {name: server.wait_quiet() for name, server in servers.items()}
        idle = {name: server.memory() for name, server in servers.items()}
        watch = {name: {name: server.proc.pid, "child": server.child_pid()} for name, server in servers.items()}
        order = list(servers)
        for client in clients:
            for sessions in session_counts:
                for name in order:
                    print(
                        f"{CONTENDERS[name]}: {client} client, {sessions} session(s), {seconds:g} s ...",
                        file=sys.stderr,
                    )
                    result = run_generator(procs, client, servers[name].url, sessions, seconds, watch[name])
                    results[name].append({**result, "run": next(runs)})
                    servers[name].check_alive()
                order.reverse()
        memory = {
            name: {"idle": idle[name], "after_load": server.memory(), "ready_to_quiet_s": ready_to_quiet[name]}
            for name, server in servers.items()
        }
    finally:
        for name, server in servers.items():
            if any(r["failures"] for r in results[name]):
                print(f"{server.name}'s log:\n{server.log_tail()}", file=sys.stderr)
            server.stop(procs)
    return results, memory


def run_benchmark(
    procs: Processes, seconds: float, session_counts: Sequence[int], clients: Sequence[str]
) -> dict[str, Any]:
    cold_start = measure_cold_starts(procs)
    print(f"direct stdio latency ({seconds:g} s) ...", file=sys.stderr)
    direct = measure_direct_stdio(procs, seconds)
    runs = itertools.count()
    forwarded, memory = run_forwarders(procs, seconds, session_counts, clients, runs)

    trivial = start_trivial(procs)
    ceiling = []
    try:
        for client in clients:
            for sessions in CEILING_SESSIONS:
                print(f"trivial server: {client} client, {sessions} session(s), {seconds:g} s ...", file=sys.stderr)
                result = run_generator(procs, client, trivial.url, sessions, seconds, {"server": trivial.proc.pid})
                ceiling.append({**result, "run": next(runs)})
    finally:
        trivial.stop(procs)

    return {
        "cold_start": cold_start,
        "direct_stdio": direct,
        "bridge": forwarded["bridge"],
        "bare": forwarded["bare"],
        "ceiling": ceiling,
        "bridge_memory": memory["bridge"],
        "bare_memory": memory["bare"],
        "comparison": compare(forwarded["bridge"], forwarded["bare"], clients),
    }


def git_revision() -> str | None:
    """The repository's commit (with "+dirty" when it has changes), so results name the code they measured."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.decode().strip() + ("+dirty" if status.stdout.strip() else "")


def parse_clients(raw: str) -> list[str]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names or any(name not in CLIENTS for name in names):
        raise argparse.ArgumentTypeError(f"--clients takes a comma-separated subset of {', '.join(CLIENTS)}")
    return list(dict.fromkeys(names))


def parse_sessions(raw: str) -> list[int]:
    counts = sorted({int(part) for part in raw.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("--sessions takes positive integers, e.g. 1,16,64")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured window per point")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--sessions",
        type=parse_sessions,
        default=list(DEFAULT_SESSIONS),
        help="comma-separated concurrent session counts through the bridge and the bare forwarder (1 is always "
        "added: the latency point)",
    )
    parser.add_argument(
        "--clients",
        type=parse_clients,
        default=list(CLIENTS),
        help="HTTP clients the load generator runs with, each through every point: raw (a lean one, so the "
        "generator costs little CPU) and aiohttp (a typical client)",
    )
    parser.add_argument("--role", choices=["load", "trivial"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP end the run with KeyboardInterrupt, so the cleanup below runs.

    SIGINT is set explicitly too: a shell starting the script in the background leaves it ignored.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "load":
        load_main(args.config)
        return 0
    if args.role == "trivial":
        trivial_main(args.port)
        return 0
    if args.seconds <= 0:
        raise SystemExit("--seconds must be positive")
    sessions = sorted({LATENCY_SESSIONS, *args.sessions})
    loadavg_before = os.getloadavg()
    revision = git_revision()
    procs = Processes()
    started = time.perf_counter()
    try:
        with exit_on_signals():
            results = run_benchmark(procs, args.seconds, sessions, args.clients)
    except KeyboardInterrupt:
        print("interrupted: stopping subprocesses", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
    failures = results["direct_stdio"]["failures"] + sum(r["failures"] for name in CONTENDERS for r in results[name])
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": loadavg_before,
        },
        "config": {
            "revision": revision,
            "seconds": args.seconds,
            "sessions": sessions,
            "clients": args.clients,
            "warmup_s": WARMUP_SECONDS,
        },
        "results": results,
        "duration_s": time.perf_counter() - started,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
