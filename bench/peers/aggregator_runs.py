"""The aggregator scenarios: `tools/list` and `tools/call` over 1, 10 and 50 targets, and one hung target of 10.

Every aggregator aggregates the same targets: one `many_targets.py` process serving `/t0/mcp` ... `/t49/mcp`, 20
tools each, so the machine runs the aggregators, not fifty servers. Requests are made one at a time from this
process (the latency a client sees), each bounded by a deadline, for a time budget with a floor of MIN_SAMPLES: a
list through a slow aggregator takes seconds, and a handful of samples is all the suite's 15 minutes allow there.
A list counts only when it holds every tool; a call only when it echoes.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import lineup
from bench_common import BENCH, HOST, free_port, latency_summary
from bridge_runs import schedule
from contenders import Processes, Server
from eraclient import HANDSHAKE, McpSession, RequestFailed
from lineup import Contender
from many_targets import TOOLS_PER_TARGET

MANY_TARGETS: Final = BENCH / "many_targets.py"
REQUEST_TIMEOUT: Final = 30.0
"""Seconds one list or call may take before the run fails (FastMCP lists 50 targets in about 3 s)."""
HUNG_TARGETS: Final = 10
MIN_SAMPLES: Final = 3
"""Requests made in every measurement, whatever the time budget."""
MAX_SAMPLES: Final = 2000
"""Count bound of one measurement next to its time budget."""


def _wait_port(proc_alive: Callable[[], bool], port: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if not proc_alive() or time.perf_counter() > deadline:
                raise RuntimeError(f"many_targets.py not listening on port {port} within {timeout:g} s") from None
            time.sleep(lineup.POLL_INTERVAL)


def start_targets(procs: Processes) -> tuple[int, Callable[[], None]]:
    """`many_targets.py` on a free port; its port and how to stop it."""
    port = free_port()
    # Its log would interleave with the suite's progress: a request released after a hang may be malformed.
    proc = procs.spawn(
        [sys.executable, str(MANY_TARGETS), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_port(lambda: proc.poll() is None, port, lineup.READY_TIMEOUT)
    return port, lambda: procs.stop(proc)


def _control(port: int, action: str, target: int) -> None:
    request = urllib.request.Request(f"http://{HOST}:{port}/control/{action}/{target}", method="POST")
    urllib.request.urlopen(request, timeout=5).close()


async def _sample(seconds: float, action: Callable[[int], Awaitable[None]]) -> list[float]:
    """Latencies of `action(i)` back to back, for `seconds` (at least MIN_SAMPLES, at most MAX_SAMPLES times)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(latencies) < MAX_SAMPLES and (len(latencies) < MIN_SAMPLES or time.perf_counter() < deadline):
        started = time.perf_counter()
        await action(len(latencies))
        latencies.append(time.perf_counter() - started)
    return latencies


async def _measure(url: str, era: str, count: int, seconds: float) -> dict[str, Any]:
    """List latency (every page, every tool present) and call latency (spread over the targets) in one session.

    Calls go to tools named as the aggregator lists them (FastMCP does not prefix the tools of a single server).
    """
    session = McpSession(url, era, REQUEST_TIMEOUT)
    expected = TOOLS_PER_TARGET * count
    names: list[str] = []

    async def list_all(_: int) -> None:
        names[:] = sorted(set(await session.list_tools()))
        if len(names) != expected:
            raise RequestFailed(f"tools/list: {len(names)} tools, expected {expected}")

    async def call(index: int) -> None:
        # A step of TOOLS_PER_TARGET + 1 through the sorted names visits every target in turn, a new tool each round.
        await session.call(names[index * (TOOLS_PER_TARGET + 1) % expected], f"m{index}-{time.monotonic_ns()}")

    try:
        await session.open()
        lists = await _sample(seconds, list_all)
        calls = await _sample(seconds, call)
    except RequestFailed as exc:
        return {"failure": str(exc)}
    finally:
        await session.close()
    return {"list": {**latency_summary(lists), "n": len(lists)}, "call": {**latency_summary(calls), "n": len(calls)}}


async def _probe(url: str, era: str) -> str | None:
    """None when the aggregator lists and calls in this era, else what went wrong."""
    session = McpSession(url, era, REQUEST_TIMEOUT)
    try:
        await session.open()
        names = await session.list_tools()
        if not names:
            raise RequestFailed("tools/list: answered with no tools")
        await session.call(min(names), f"probe {era}")
        return None
    except RequestFailed as exc:
        return str(exc)
    finally:
        await session.close()


def _start_all(
    procs: Processes, contenders: Sequence[Contender], workdir: Path, port: int, count: int
) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    for contender in contenders:
        servers[contender.key] = server = lineup.start(procs, contender, workdir, (port, count))
        lineup.wait_serving(server, TOOLS_PER_TARGET * count)
        lineup.check_loopback(server)
    for server in servers.values():
        server.wait_quiet()
    return servers


def aggregation(
    procs: Processes,
    contenders: Sequence[Contender],
    workdir: Path,
    counts: Sequence[int],
    eras: Sequence[str],
    repeats: int,
    seconds: float,
) -> dict[str, Any]:
    """For each target count: every aggregator up over the same targets, measured in turn (A B, B A), each era."""
    results: dict[str, Any] = {c.key: {"runs": [], "unsupported": {}} for c in contenders}
    port, stop_targets = start_targets(procs)
    try:
        for count in counts:
            servers = _start_all(procs, contenders, workdir, port, count)
            try:
                for era in eras:
                    keys = []
                    for key, server in servers.items():
                        problem = asyncio.run(_probe(server.url, era))
                        if problem is None:
                            keys.append(key)
                        else:
                            results[key]["unsupported"].setdefault(era, problem)
                    for _, key in schedule(keys, [count], repeats):
                        print(f"aggregator {era}: {servers[key].name}, {count} target(s)", file=sys.stderr)
                        run = asyncio.run(_measure(servers[key].url, era, count, seconds))
                        results[key]["runs"].append({"era": era, "targets": count, **run})
                        servers[key].check_alive()
                memory = {key: lineup.memory(server) for key, server in servers.items()}
                for key in servers:
                    results[key].setdefault("memory", {})[count] = memory[key]
            finally:
                for server in servers.values():
                    lineup.stop(procs, server)
    finally:
        stop_targets()
    return results


async def _new_session(url: str, timeout: float) -> str | None:
    """None when a new session can be opened during the hang, else what went wrong."""
    session = McpSession(url, HANDSHAKE, timeout)
    try:
        await session.open()
        return None
    except RequestFailed as exc:
        return str(exc)
    finally:
        await session.close()


async def _while_hung(url: str, port: int, seconds: float, timeout: float) -> dict[str, Any]:
    """Lists, in a session opened before the hang, while a target hangs; stops at the first list not answered within
    `timeout`. Then whether a new session can be opened (within half of it)."""
    session = McpSession(url, HANDSHAKE, timeout)
    latencies: list[float] = []
    listed: set[int] = set()
    no_answer: str | None = None

    async def list_all(_: int) -> None:
        listed.add(len(set(await session.list_tools())))

    try:
        await session.open()
        await asyncio.to_thread(_control, port, "hang", 0)
        latencies = await _sample(seconds, list_all)
    except RequestFailed as exc:
        no_answer = str(exc)
    finally:
        await session.close()
    new_session = await _new_session(url, timeout / 2)
    await asyncio.to_thread(_control, port, "resume", 0)
    return {
        "list": {**latency_summary(latencies), "n": len(latencies)},
        "tools_listed": sorted(listed),
        "no_answer": no_answer,
        "new_session": new_session,
    }


def hung_target(
    procs: Processes, contenders: Sequence[Contender], workdir: Path, seconds: float, timeout: float
) -> dict[str, Any]:
    """Ten targets, the first told to stop answering: does each aggregator's list wait for it, and how long it takes.

    The hang starts anew for each contender, after its session is open, and ends before the next one's. A list not
    answered within `timeout` seconds waited for the hung target (FastMCP's waits over 90 s, kept open by pings).
    """
    results: dict[str, Any] = {}
    port, stop_targets = start_targets(procs)
    try:
        servers = _start_all(procs, contenders, workdir, port, HUNG_TARGETS)
        try:
            for contender in contenders:
                print(f"hung target: {contender.label}", file=sys.stderr)
                results[contender.key] = asyncio.run(_while_hung(servers[contender.key].url, port, seconds, timeout))
        finally:
            for server in servers.values():
                lineup.stop(procs, server)
    finally:
        stop_targets()
    return results
