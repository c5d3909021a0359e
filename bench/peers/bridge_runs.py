"""The stdio bridge scenarios: cold start, the hop under load in both eras, and 1,000 sessions held for a while.

Every bridge fronts the same echo server (`tests/fixtures/servers/echo_stdio.py`, which answers at once), so the
numbers are the bridges'. Load comes from loadgen's generator in a process of its own (`run.py --role load`), with
the era clients of `eraclient.py`; every reply is verified, and a run with any failure does not score.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import lineup
from bench_common import CALL_TIMEOUT, WARMUP_SECONDS
from contenders import Processes, Server
from eraclient import ERA_CLIENT, HANDSHAKE, McpSession, RequestFailed
from lineup import Contender
from soakload import DELETE_GRACE, END_GRACE, SETUP_DEADLINE

RUN_SCRIPT: Final = Path(__file__).resolve().parent / "run.py"
WORKER_SLACK: Final = 4 * CALL_TIMEOUT + 10.0
"""Seconds a load-generator process may run past its window: the sessions' set-up (initialize, initialized) and
wind-down (the last call, DELETE), each request bounded by the watchdog's CALL_TIMEOUT, and the process's own start."""
SOAK_SLACK: Final = SETUP_DEADLINE + 2 * CALL_TIMEOUT + END_GRACE + DELETE_GRACE + 10.0
"""Seconds the long run's generator may take besides its window: set-up (a request started before the deadline may
take its CALL_TIMEOUT twice), the grace periods at the end, and the process's own start."""
SAMPLE_INTERVAL: Final = 1.0
"""Seconds between memory readings during the long run."""
TREE_LIMIT_GIB: Final = 14.0
"""The long run stops a contender whose process tree passes this (supergateway's needs 13 GiB for 1,000 sessions)."""
MEMORY_FLOOR_GIB: Final = 4.0
"""The long run also stops a contender when the machine has less memory than this left."""


def _worker(procs: Processes, role: str, config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One load-generator process (`run.py --role ROLE`); its result, or a failure saying why there is none."""
    proc = procs.spawn(
        [sys.executable, str(RUN_SCRIPT), "--role", role, "--config", json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    failed = {**config, "failures": 1}
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
        return {**failed, "failure_samples": ["load generator hung (killed)"]}
    procs.stop(proc)
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {**failed, "failure_samples": [f"load generator exited with {proc.returncode}: {last[0]}"]}
    result: dict[str, Any] = json.loads(out)
    return result


def run_worker(
    procs: Processes, client: str, url: str, sessions: int, seconds: float, watch: dict[str, int]
) -> dict[str, Any]:
    """loadgen's back-to-back load with the named client, in a process of its own."""
    config = {"client": client, "url": url, "sessions": sessions, "seconds": seconds, "watch": watch}
    return _worker(procs, "load", config, seconds + WARMUP_SECONDS + WORKER_SLACK)


def schedule(keys: Sequence[str], points: Sequence[int], repeats: int) -> Iterator[tuple[int, str]]:
    """(sessions, contender) in run order: each point runs every contender once per repeat, in an order that flips
    from one point to the next and from one repeat to the next (A B C, C B A, ...), so none always goes first."""
    for repeat in range(repeats):
        for index, sessions in enumerate(points):
            order = keys if (repeat + index) % 2 == 0 else list(reversed(keys))
            for key in order:
                yield sessions, key


def cold_starts(procs: Processes, contenders: Sequence[Contender], runs: int, workdir: Path) -> dict[str, list[float]]:
    """Milliseconds from spawn to the first verified `tools/call` answered, `runs` times each, order alternating."""
    results: dict[str, list[float]] = {c.key: [] for c in contenders}
    for run in range(runs):
        for contender in contenders if run % 2 == 0 else list(reversed(contenders)):
            print(f"cold start {run + 1}/{runs}: {contender.label}", file=sys.stderr)
            spawned = time.perf_counter()
            server = lineup.start(procs, contender, workdir)
            try:
                lineup.wait_serving(server)
                results[contender.key].append((time.perf_counter() - spawned) * 1e3)
            finally:
                lineup.stop(procs, server)
    return results


async def _probe(url: str, era: str) -> str | None:
    """None when a contender answers a verified echo call in this era, else what went wrong."""
    session = McpSession(url, era, lineup.PROBE_TIMEOUT)
    try:
        await session.open()
        await session.call("echo", f"probe {era}")
        return None
    except RequestFailed as exc:
        return str(exc)
    finally:
        await session.close()


def hop(
    procs: Processes,
    contenders: Sequence[Contender],
    workdir: Path,
    points: Mapping[str, Sequence[int]],
    repeats: int,
    seconds: float,
) -> dict[str, Any]:
    """Every contender up at once, loaded in turn at each session count of each era it supports.

    `points` maps an era to its session counts. Memory is read after the handshake era's load (all contenders have
    then carried the same load).
    """
    servers: dict[str, Server] = {}
    results: dict[str, Any] = {c.key: {"runs": [], "unsupported": {}} for c in contenders}
    try:
        for contender in contenders:
            servers[contender.key] = server = lineup.start(procs, contender, workdir)
            lineup.wait_serving(server)
            lineup.check_loopback(server)
        for server in servers.values():
            server.wait_quiet()
        for era, era_points in points.items():
            keys = []
            for key, server in servers.items():
                problem = asyncio.run(_probe(server.url, era))
                if problem is None:
                    keys.append(key)
                else:
                    results[key]["unsupported"][era] = problem
            for sessions, key in schedule(keys, era_points, repeats):
                server = servers[key]
                print(f"hop {era}: {server.name}, {sessions} session(s), {seconds:g} s", file=sys.stderr)
                watch = {"server": server.proc.pid}
                result = run_worker(procs, ERA_CLIENT[era], server.url, sessions, seconds, watch)
                results[key]["runs"].append({"era": era, **result})
                server.check_alive()
            if era == HANDSHAKE:
                for key, server in servers.items():
                    results[key]["memory"] = lineup.memory(server)
    finally:
        for server in servers.values():
            lineup.stop(procs, server)
    return results


class MemoryWatch:
    """Reads a contender's memory while it is under load; stops it if the machine runs short.

    The peak of the whole process tree matters because some peers start a server process per session.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak_tree_mb = 0.0
        self.stopped_for_memory = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(SAMPLE_INTERVAL):
            tree_mb = lineup.memory(self.server)["tree_rss_mb"]
            self.peak_tree_mb = max(self.peak_tree_mb, tree_mb)
            if tree_mb > TREE_LIMIT_GIB * 1024 or _available_gib() < MEMORY_FLOOR_GIB:
                self.stopped_for_memory = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.server.proc.pid, signal.SIGKILL)
                return

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return float("inf")


def soak(
    procs: Processes, contenders: Sequence[Contender], workdir: Path, sessions: int, seconds: float, interval: float
) -> dict[str, Any]:
    """Each contender fresh and alone: `sessions` sessions, each calling every `interval` s for `seconds`."""
    results: dict[str, Any] = {}
    for contender in contenders:
        server = lineup.start(procs, contender, workdir)
        try:
            lineup.wait_serving(server)
            server.wait_quiet()
            before = lineup.memory(server)
            print(f"{sessions} sessions: {contender.label}, {seconds:g} s", file=sys.stderr)
            config = {"url": server.url, "sessions": sessions, "seconds": seconds, "interval": interval,
                      "watch": {"server": server.proc.pid}}  # fmt: skip
            with MemoryWatch(server) as watch:
                run = _worker(procs, "soak", config, seconds + WARMUP_SECONDS + SOAK_SLACK)
            alive = server.proc.poll() is None
            results[contender.key] = {
                "run": run,
                "memory_before": before,
                "memory_after": lineup.memory(server) if alive else {},
                "peak_tree_rss_mb": watch.peak_tree_mb,
                "stopped_for_memory": watch.stopped_for_memory,
                "alive_after": alive,
            }
        finally:
            lineup.stop(procs, server)
    return results
