"""Benchmark of the aggregator (`plexus-aggregator`): what a hop costs, how lists scale, and a hung target.

1. Calls: `tools/call echo` through aggregator -> bridge -> the trivial echo server, next to the same bridge called
   directly, at 1 session (latency: the difference is the hop) and 16 sessions (throughput), every reply verified
   by the raw load generator of `bridge_bench.py`. The two contenders alternate (A B A B) and medians are reported.
2. Lists: `tools/list` p50/p99 with 1, 10 and 50 targets of 20 tools each (`many_targets.py`, one process serving
   every target), for the first page and for the whole list (every page).
3. One hung target of 10: `tools/list` p50/p99 while it hangs (answered from the catalogue, so its deadline is never
   waited for), and how long a call to its tool takes to fail (its deadline, 2 s here).

Targets: tools/list over 50 targets under 5 ms p50; a hop under 0.5 ms at p50; at least 4,000 calls/s at 16
sessions through aggregator -> bridge -> trivial server.

    python bench/aggregator_bench.py [--seconds N] [--repeats N] [--out FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from bench_common import BENCH, HOST, INITIALIZE, free_port, latency_summary, median
from bridge_bench import run_generator
from contenders import READY_TIMEOUT, Processes, Server, _spawn_server, start_bridge

AGGREGATOR_EXE: Final = Path(sys.executable).parent / "plexus-aggregator"
LIST_TARGETS: Final = (1, 10, 50)
LIST_REQUESTS: Final = 500
"""tools/list requests per measurement (first page); a tenth as many complete listings."""
HUNG_DEADLINE: Final = 2.0
TARGET_LIST_P50_MS: Final = 5.0
TARGET_HOP_MS: Final = 0.5
TARGET_CALLS: Final = 4000
_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def start_aggregator(procs: Processes, config: str, workdir: Path) -> Server:
    path = workdir / f"aggregator-{time.monotonic_ns()}.yaml"
    path.write_text(config)
    argv = [str(AGGREGATOR_EXE), "--config", str(path), "--host", HOST, "--port", "{port}", "--log-level", "warning"]
    server = _spawn_server(procs, "the aggregator", argv, ("GET", "/readyz", None))
    server.wait_ready(time.perf_counter() + READY_TIMEOUT)
    return server


def wait_targets_up(server: Server, count: int) -> None:
    deadline = time.perf_counter() + READY_TIMEOUT
    while True:
        with urllib.request.urlopen(f"http://{HOST}:{server.port}/targets", timeout=5) as response:
            document = json.load(response)
        if sum(target["status"] == "up" for target in document["targets"]) == count:
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"targets not up within {READY_TIMEOUT} s: {document}")
        time.sleep(0.05)


class McpConnection:
    """A minimal blocking MCP client for list timings: one keep-alive connection, one session."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self._headers = dict(_HEADERS)
        self._ids = 0
        status, headers, _ = self._post(INITIALIZE)
        if status != 200:
            raise RuntimeError(f"initialize answered HTTP {status}")
        self._headers["Mcp-Session-Id"] = headers["mcp-session-id"]
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _post(self, message: dict[str, Any]) -> tuple[int, http.client.HTTPMessage, bytes]:
        self._conn.request("POST", "/mcp", body=orjson.dumps(message), headers=self._headers)
        response = self._conn.getresponse()
        return response.status, response.headers, response.read()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params:
            message["params"] = params
        _, _, body = self._post(message)
        reply: dict[str, Any] = orjson.loads(body)
        return reply

    def list_page(self, cursor: str | None = None) -> dict[str, Any]:
        reply = self.request("tools/list", {"cursor": cursor} if cursor else None)
        if "result" not in reply:
            raise RuntimeError(f"tools/list failed: {reply}")
        result: dict[str, Any] = reply["result"]
        return result

    def list_all(self) -> int:
        count, cursor = 0, None
        while True:
            page = self.list_page(cursor)
            count += len(page["tools"])
            cursor = page.get("nextCursor")
            if not cursor:
                return count

    def close(self) -> None:
        self._conn.close()


def time_lists(port: int, expected_tools: int, requests: int = LIST_REQUESTS) -> dict[str, Any]:
    """p50/p99 of the first page and of the complete listing, after checking the listing is complete."""
    connection = McpConnection(port)
    try:
        listed = connection.list_all()
        if listed != expected_tools:
            raise RuntimeError(f"listed {listed} tools, expected {expected_tools}")
        page: list[float] = []
        for _ in range(requests):
            started = time.perf_counter()
            connection.list_page()
            page.append(time.perf_counter() - started)
        complete: list[float] = []
        for _ in range(max(1, requests // 10)):
            started = time.perf_counter()
            connection.list_all()
            complete.append(time.perf_counter() - started)
    finally:
        connection.close()
    return {"tools": listed, "first_page": latency_summary(page), "all_pages": latency_summary(complete)}


def targets_config(port: int, count: int, extra: str = "") -> str:
    lines = [extra, "targets:"] + [f"  - name: t{i}\n    url: http://{HOST}:{port}/t{i}/mcp" for i in range(count)]
    return "\n".join(lines) + "\n"


def lists_scenario(procs: Processes, workdir: Path) -> list[dict[str, Any]]:
    port = free_port()
    upstreams = procs.spawn([sys.executable, str(BENCH / "many_targets.py"), str(port)])
    try:
        results = []
        for count in LIST_TARGETS:
            aggregator = start_aggregator(procs, targets_config(port, count), workdir)
            wait_targets_up(aggregator, count)
            aggregator.wait_quiet()
            results.append({"targets": count, **time_lists(aggregator.port, 20 * count)})
            aggregator.stop(procs)
        return results
    finally:
        procs.stop(upstreams)


def hung_scenario(procs: Processes, workdir: Path) -> dict[str, Any]:
    port = free_port()
    upstreams = procs.spawn([sys.executable, str(BENCH / "many_targets.py"), str(port)])
    try:
        timeouts = f"timeouts: {{list: {HUNG_DEADLINE}, call: {HUNG_DEADLINE}}}"
        aggregator = start_aggregator(procs, targets_config(port, 10, timeouts), workdir)
        wait_targets_up(aggregator, 10)
        aggregator.wait_quiet()
        urllib.request.urlopen(urllib.request.Request(f"http://{HOST}:{port}/control/hang/0", method="POST")).close()
        connection = McpConnection(aggregator.port)
        started = time.perf_counter()
        reply = connection.request("tools/call", {"name": "t0_tool00", "arguments": {"message": "anyone?"}})
        call_failed_after = time.perf_counter() - started
        if "error" not in reply:
            raise RuntimeError(f"a call to the hung target did not fail: {reply}")
        connection.close()
        during = time_lists(aggregator.port, 200)
        aggregator.stop(procs)
        return {"call_failed_after_s": call_failed_after, "deadline_s": HUNG_DEADLINE, "lists": during}
    finally:
        procs.stop(upstreams)


def calls_scenario(procs: Processes, workdir: Path, seconds: float, repeats: int) -> dict[str, Any]:
    bridge = start_bridge(procs)
    bridge.wait_ready(time.perf_counter() + READY_TIMEOUT)
    config = f"prefix: conditional\ntargets:\n  - name: echo\n    url: {bridge.url}\n"
    aggregator = start_aggregator(procs, config, workdir)
    wait_targets_up(aggregator, 1)
    bridge.wait_quiet()
    aggregator.wait_quiet()
    watch = {"bridge": bridge.proc.pid, "aggregator": aggregator.proc.pid, "echo": bridge.child_pid()}
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {"bridge": {1: [], 16: []}, "aggregator": {1: [], 16: []}}
    for repeat in range(repeats):
        for sessions in (1, 16):
            order = ("bridge", "aggregator") if repeat % 2 == 0 else ("aggregator", "bridge")
            for name in order:
                url = bridge.url if name == "bridge" else aggregator.url
                runs[name][sessions].append(run_generator(procs, "raw", url, sessions, seconds, watch))
    memory = aggregator.memory()
    aggregator.stop(procs)
    bridge.stop(procs)
    summary: dict[str, Any] = {"runs": runs, "aggregator_memory": memory}
    for name in runs:
        summary[name] = {
            "p50_ms_1": median([r.get("p50_ms", 0.0) for r in runs[name][1]]),
            "p99_ms_1": median([r.get("p99_ms", 0.0) for r in runs[name][1]]),
            "calls_per_s_16": median([r.get("calls_per_s", 0.0) for r in runs[name][16]]),
            "p50_ms_16": median([r.get("p50_ms", 0.0) for r in runs[name][16]]),
            "cpu_16": runs[name][16][-1].get("cpu_cores", {}),
        }
    summary["hop_ms"] = summary["aggregator"]["p50_ms_1"] - summary["bridge"]["p50_ms_1"]
    summary["failures"] = sum(r.get("failures", 0) for by in runs.values() for rs in by.values() for r in rs)
    return summary


def render(results: dict[str, Any]) -> str:
    calls, lists, hung = results["calls"], results["lists"], results["hung"]
    lines = ["tools/call echo, raw client, every reply verified (median of runs, A B alternating)",
             "  path                        p50 ms (1)  p99 ms (1)  calls/s (16)  p50 ms (16)  CPU at 16"]  # fmt: skip
    for name, label in (("bridge", "client -> bridge"), ("aggregator", "client -> aggregator -> bridge")):
        row = calls[name]
        cpu = ", ".join(f"{k} {v:.0%}" for k, v in row["cpu_16"].items() if k not in ("machine", "steal"))
        lines.append(f"  {label:28s}{row['p50_ms_1']:10.3f}  {row['p99_ms_1']:10.3f}  {row['calls_per_s_16']:12.0f}"
                     f"  {row['p50_ms_16']:11.3f}  {cpu}")  # fmt: skip
    lines.append(
        f"  hop: {calls['hop_ms']:.3f} ms at p50; aggregator peak RSS {calls['aggregator_memory']['vm_hwm_mb']:.0f} MB"
    )
    lines += ["", "tools/list answered from the catalogue (20 tools per target, pages of 200)",
              "  targets  tools  first page p50/p99 ms  every page p50/p99 ms"]  # fmt: skip
    for row in lists:
        first, every = row["first_page"], row["all_pages"]
        lines.append(f"  {row['targets']:7d}  {row['tools']:5d}  {first['p50_ms']:9.3f} / {first['p99_ms']:.3f}"
                     f"  {every['p50_ms']:12.3f} / {every['p99_ms']:.3f}")  # fmt: skip
    during = hung["lists"]["first_page"]
    failed_after = f"{hung['call_failed_after_s']:.2f} s (deadline {hung['deadline_s']:g} s)"
    lines += ["", f"One hung target of 10: tools/list p50 {during['p50_ms']:.3f} ms, p99 {during['p99_ms']:.3f} ms; "
              f"a call to it failed after {failed_after}"]  # fmt: skip
    at50 = next(row for row in lists if row["targets"] == 50)["first_page"]["p50_ms"]
    verdicts = [
        (f"tools/list over 50 targets < {TARGET_LIST_P50_MS} ms p50", f"{at50:.3f} ms", at50 < TARGET_LIST_P50_MS),
        (f"hop < {TARGET_HOP_MS} ms at p50", f"{calls['hop_ms']:.3f} ms", calls["hop_ms"] < TARGET_HOP_MS),
        (f">= {TARGET_CALLS} calls/s at 16 sessions", f"{calls['aggregator']['calls_per_s_16']:.0f}",
         calls["aggregator"]["calls_per_s_16"] >= TARGET_CALLS),
        ("hung target's list p99 within its deadline", f"{during['p99_ms']:.3f} ms",
         during["p99_ms"] < hung["deadline_s"] * 1000),
    ]  # fmt: skip
    lines += ["", "Targets:"] + [f"  {name}: {value} {'met' if ok else 'MISSED'}" for name, value, ok in verdicts]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window of each call run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each contender at each session count")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "aggregator.json")
    args = parser.parse_args(argv)
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            results: dict[str, Any] = {
                "calls": calls_scenario(procs, Path(workdir), args.seconds, args.repeats),
                "lists": lists_scenario(procs, Path(workdir)),
                "hung": hung_scenario(procs, Path(workdir)),
            }
    finally:
        procs.stop_all()
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 1 if results["calls"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
