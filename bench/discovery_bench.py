"""How fast a Kubernetes Service becomes tools a connected client can call, and how fast it goes away.

The stub Kubernetes API server of the tests (`tests/aggregator/discovery/kube_stub.py`, list and watch as the real
one serves them) stands in for the cluster, with a real bridge and `plexus-aggregator kubernetes` as processes. Each
round creates a Service and its EndpointSlice pointing at the bridge and times, from that write, the client's
`notifications/tools/list_changed` and the tools being listed; then deletes the Service and times their removal.

    python bench/discovery_bench.py [--rounds 20]

Target: a new Service visible to clients (with list_changed) within 2 s of the watch event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench_common import BENCH, ECHO_SERVER, HOST, REPO, free_port, latency_summary
from contenders import BRIDGE_EXE, READY_TIMEOUT, Processes, _spawn_server

sys.path.insert(0, str(REPO))  # the stub API server lives with the tests that use it
from tests.aggregator.discovery.kube_stub import StubApiServer, endpoint_slice, service

AGGREGATOR_EXE: Final = Path(sys.executable).parent / "plexus-aggregator"
TARGET_SECONDS: Final = 2.0
ROUND_TIMEOUT: Final = 10.0


def mcp_service(name: str, port: int) -> dict[str, Any]:
    obj = service(name, "bench", labels={"plexus.dev/bridge": "true"}, ports=[("mcp", port)])
    obj["spec"]["ports"][0]["appProtocol"] = "plexus.dev/mcp"
    return obj


async def rounds(api: StubApiServer, url: str, bridge_port: int, count: int) -> dict[str, list[float]]:
    from mcp.client import Client

    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if "ToolListChanged" in type(getattr(message, "root", message)).__name__:
            changed.set()

    timings: dict[str, list[float]] = {"list_changed_s": [], "tools_listed_s": [], "removed_s": []}
    # "removed" is timed to the list_changed that withdraws the tools.
    async with Client(url, mode="legacy", message_handler=on_message) as client:
        for index in range(count):
            name = f"echo-{index}"
            changed.clear()
            started = time.perf_counter()
            api.apply(mcp_service(name, bridge_port))
            api.apply(endpoint_slice(name, "bench", addresses_ready=[(HOST, True)], port_name="mcp", port=bridge_port))
            async with asyncio.timeout(ROUND_TIMEOUT):
                await changed.wait()
            timings["list_changed_s"].append(time.perf_counter() - started)
            if f"{name}_echo" not in await names(client):
                raise RuntimeError(f"list_changed came, but {name}_echo is not listed")
            timings["tools_listed_s"].append(time.perf_counter() - started)
            changed.clear()
            started = time.perf_counter()
            api.delete("Service", name, "bench")
            api.delete("EndpointSlice", f"{name}-slice", "bench")
            async with asyncio.timeout(ROUND_TIMEOUT):
                await changed.wait()
            if f"{name}_echo" in await names(client):
                raise RuntimeError(f"list_changed came, but {name}_echo is still listed")
            timings["removed_s"].append(time.perf_counter() - started)
    return timings


async def names(client: Any) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="Services created and deleted, one after another")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "discovery.json")
    args = parser.parse_args(argv)
    procs = Processes()
    try:
        with StubApiServer() as api, tempfile.TemporaryDirectory() as workdir:
            kubeconfig = api.write_kubeconfig(Path(workdir) / "kubeconfig")
            argv_bridge = [str(BRIDGE_EXE), "stdio", "--host", HOST, "--port", "{port}", "--log-level", "warning",
                           "--", sys.executable, str(ECHO_SERVER)]  # fmt: skip
            bridge = _spawn_server(procs, "the bridge", argv_bridge, ("GET", "/readyz", None))
            bridge.wait_ready(time.perf_counter() + READY_TIMEOUT)
            port = free_port()
            aggregator = procs.spawn([str(AGGREGATOR_EXE), "kubernetes", "--kubeconfig", str(kubeconfig),
                                      "--host", HOST, "--port", str(port), "--log-level", "warning"])  # fmt: skip
            url = f"http://{HOST}:{port}"
            _wait_ready(url)
            timings = asyncio.run(rounds(api, url + "/mcp", bridge.port, args.rounds))
            procs.stop(aggregator)
    finally:
        procs.stop_all()
    summary = {key: latency_summary(values) for key, values in timings.items()}
    print(f"Kubernetes discovery, {args.rounds} Services created then deleted (stub API server, real processes)")
    for key, stats in summary.items():
        print(
            f"  {key:16s} p50 {stats['p50_ms']:7.1f} ms  p99 {stats['p99_ms']:7.1f} ms  max {stats['max_ms']:7.1f} ms"
        )
    worst = max(timings["list_changed_s"])
    print(f"Target: list_changed within {TARGET_SECONDS:g} s of the write: worst {worst:.3f} s "
          f"{'met' if worst < TARGET_SECONDS else 'MISSED'}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"timings": timings, "summary": summary}, indent=2))
    return 0


def _wait_ready(url: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.perf_counter() + READY_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the aggregator at {url} not ready within {READY_TIMEOUT} s")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
