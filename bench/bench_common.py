"""What the benchmark's processes share: the MCP messages of a call and their check, statistics and CPU readings,
and reading a request body in the benchmark's own servers."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson

HOST: Final = "127.0.0.1"
BENCH: Final = Path(__file__).resolve().parent
REPO: Final = BENCH.parent
ECHO_SERVER: Final = REPO / "tests" / "fixtures" / "servers" / "echo_stdio.py"

WARMUP_SECONDS: Final = 0.5
"""Calls made before the window starts (connections, caches, the JIT-less interpreter's first passes): not counted."""
MAX_CALLS_PER_SESSION: Final = 500_000
"""Count bound of one session in one window, next to the time bound (a broken fast path cannot run forever)."""
CALL_TIMEOUT: Final = 10.0
"""Seconds one HTTP call may take before it counts as a failure (a hang becomes a failure, not a stuck benchmark)."""
FAILURE_SAMPLES: Final = 5
"""Failures kept verbatim per run for the report."""
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

PROTOCOL_VERSION: Final = "2025-11-25"
ACCEPT: Final = "application/json, text/event-stream"
INITIALIZE: Final[dict[str, Any]] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "plexus-bridge-bench", "version": "1"},
    },
}
INITIALIZED: Final = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


async def receive_body(receive: Any) -> bytes:
    """The whole body of an ASGI request, for the benchmark's own do-nothing servers."""
    chunks = []
    while True:
        event = await receive()
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            return b"".join(chunks)


def call_body(request_id: int, message: str) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": message}},
        }
    )


def check_reply(body: bytes, request_id: int, message: str) -> str | None:
    """None when `body` is the echo reply to this call, else what is wrong with it."""
    try:
        reply = orjson.loads(body)
        if "error" in reply:
            return f"JSON-RPC error {reply['error'].get('code')}: {reply['error'].get('message')}"
        if reply["id"] != request_id:
            return f"id {reply['id']!r} != {request_id!r}"
        text = reply["result"]["content"][0]["text"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return f"malformed reply ({type(exc).__name__}: {exc}): {body[:200]!r}"
    if text != message:
        return f"echoed {text!r}, sent {message!r}"
    return None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    return {
        "p50_ms": percentile(ordered, 0.50) * 1e3,
        "p90_ms": percentile(ordered, 0.90) * 1e3,
        "p99_ms": percentile(ordered, 0.99) * 1e3,
        "max_ms": (ordered[-1] if ordered else math.nan) * 1e3,
    }


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (not its children), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy (all CPUs) and stolen by the hypervisor, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port
