"""The OpenAPI bridge benchmark: tool calls per second through `plexus-bridge openapi` in front of a trivial REST
endpoint (`rest_echo.py`), at 1, 16 and 64 sessions, every reply verified; and the time and memory to load GitHub's
REST spec (about 1,200 operations, 13 MB) until every tool is listed.

    python bench/openapi_bench.py [--seconds N] [--sessions 1,16,64] [--out FILE]

Target: at least 3,000 tool calls/s at 16 sessions; GitHub's spec ready in under 3 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from bench_common import BENCH, HOST, REPO, free_port
from bridge_bench import parse_sessions, run_generator
from contenders import BRIDGE_EXE, READY_TIMEOUT, Processes, _spawn_server

GITHUB_SPEC: Final = REPO / "tests" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
TARGET_CALLS: Final = 3000
TARGET_GITHUB_READY: Final = 3.0


def throughput(procs: Processes, sessions: list[int], seconds: float) -> list[dict[str, Any]]:
    rest_port = free_port()
    rest = procs.spawn([sys.executable, str(BENCH / "rest_echo.py"), str(rest_port)])
    argv = [str(BRIDGE_EXE), "openapi", "--host", HOST, "--port", "{port}", "--log-level", "warning",
            "--spec", str(BENCH / "echo_api.yaml"), "--base-url", f"http://{HOST}:{rest_port}"]  # fmt: skip
    bridge = _spawn_server(procs, "the OpenAPI bridge", argv, ("GET", "/readyz", None))
    bridge.wait_ready(time.perf_counter() + READY_TIMEOUT)
    bridge.wait_quiet()
    results = []
    for count in sessions:
        watch = {"bridge": bridge.proc.pid, "rest": rest.pid}
        results.append(run_generator(procs, "raw", bridge.url, count, seconds, watch))
    results.append({"memory": bridge.memory()})
    bridge.stop(procs)
    procs.stop(rest)
    return results


def github_load(procs: Processes) -> dict[str, Any]:
    """Spawn to every tool listed (all pages), and the bridge's peak memory."""
    started = time.perf_counter()
    argv = [str(BRIDGE_EXE), "openapi", "--host", HOST, "--port", "{port}", "--log-level", "warning",
            "--spec", str(GITHUB_SPEC), "--base-url", "http://127.0.0.1:9"]  # fmt: skip
    bridge = _spawn_server(procs, "the OpenAPI bridge (GitHub)", argv, ("GET", "/readyz", None))
    bridge.wait_ready(started + READY_TIMEOUT)
    ready = time.perf_counter() - started
    tools = list_all(bridge.port)
    listed = time.perf_counter() - started
    memory = bridge.memory()
    bridge.stop(procs)
    return {"ready_s": ready, "all_listed_s": listed, "tools": tools, **memory}


def list_all(port: int) -> int:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    client = {"name": "openapi-bench", "version": "1"}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    conn.request("POST", "/mcp", body=orjson.dumps(init), headers=headers)
    response = conn.getresponse()
    response.read()
    headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
    count, cursor, request_id = 0, None, 1
    while True:
        params = {"cursor": cursor} if cursor else {}
        conn.request("POST", "/mcp", body=orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/list",
                                                       "params": params}), headers=headers)  # fmt: skip
        result = orjson.loads(conn.getresponse().read())["result"]
        count += len(result["tools"])
        cursor, request_id = result.get("nextCursor"), request_id + 1
        if not cursor:
            return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per point")
    parser.add_argument("--sessions", type=parse_sessions, default=[1, 16, 64], help="session counts, e.g. 1,16,64")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "openapi.json")
    args = parser.parse_args(argv)
    procs = Processes()
    try:
        calls = throughput(procs, args.sessions, args.seconds)
        github = github_load(procs)
    finally:
        procs.stop_all()
    failures = sum(result.get("failures", 0) for result in calls)
    print("OpenAPI bridge in front of a trivial REST endpoint (raw client, every reply verified)")
    print("  sessions  calls/s  p50 ms  p99 ms  bridge CPU  REST CPU  fail")
    for result in calls:
        if "sessions" in result:
            cpu = result.get("cpu_cores", {})
            print(f"  {result['sessions']:8d} {result.get('calls_per_s', 0):8.0f} {result.get('p50_ms', 0):7.3f}"
                  f" {result.get('p99_ms', 0):7.3f} {cpu.get('bridge', 0):10.0%} {cpu.get('rest', 0):9.0%}"
                  f" {result.get('failures', 0):5d}")  # fmt: skip
    print(f"  bridge memory: {calls[-1]['memory']}")
    print(f"GitHub REST spec: ready {github['ready_s']:.2f} s, all {github['tools']} tools listed "
          f"{github['all_listed_s']:.2f} s, peak RSS {github['vm_hwm_mb']:.0f} MB")  # fmt: skip
    at16 = next((r.get("calls_per_s", 0) for r in calls if r.get("sessions") == 16), None)
    if at16 is not None:
        verdict = "met" if at16 >= TARGET_CALLS else "MISSED"
        print(f"Target: >= {TARGET_CALLS} calls/s at 16 sessions: {at16:.0f} {verdict}")
    print(f"Target: GitHub spec ready < {TARGET_GITHUB_READY} s: {github['ready_s']:.2f} "
          f"{'met' if github['ready_s'] < TARGET_GITHUB_READY else 'MISSED'}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"calls": calls, "github": github}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
