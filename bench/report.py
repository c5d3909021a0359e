"""The benchmark's printed report: latency, throughput, cold start, memory, bridge vs. bare forwarder, targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from contenders import QUIET_CPU, QUIET_SLICE, QUIET_SLICES

LATENCY_SESSIONS: Final = 1
"""The latency comparison is the one-session point; it is always run."""
COMPARED_SESSIONS: Final = 16
"""Session count at which the bridge's calls/s are compared with the bare forwarder's (and the target applies)."""
COLD_START_RUNS: Final = 3
"""Bridge cold starts measured; the median is reported."""
CHILD_START_RUNS: Final = 5
"""Echo-server-alone starts measured; the median is reported."""

TARGET_CALLS_PER_S_16: Final = 8000.0
TARGET_P50_MS_1: Final = 0.35
TARGET_RSS_MB: Final = 80.0
TARGET_READY_OVER_CHILD_MS: Final = 600.0

CONTENDERS: Final = {"bridge": "bridge", "bare": "bare forwarder", "ceiling": "trivial server"}
"""Result lists in the report, in table order, and their labels."""
SERVER_CPU: Final = {"bridge": "bridge", "bare": "bare", "ceiling": "server"}
"""The key of each contender's server process in a result's `cpu_cores`."""


def compare(bridge: Sequence[dict[str, Any]], bare: Sequence[dict[str, Any]], clients: Sequence[str]) -> dict[str, Any]:
    """Per client: the bridge's calls/s at 16 sessions over the bare forwarder's, and its p50 at 1 session minus it."""
    bridge_at = {(r["client"], r["sessions"]): r for r in bridge}
    bare_at = {(r["client"], r["sessions"]): r for r in bare}
    comparison: dict[str, Any] = {}
    for client in clients:
        calls: dict[str, float | None] = {
            name: at.get((client, COMPARED_SESSIONS), {}).get("calls_per_s")
            for name, at in (("bridge", bridge_at), ("bare", bare_at))
        }
        p50: dict[str, float | None] = {
            name: at.get((client, LATENCY_SESSIONS), {}).get("p50_ms")
            for name, at in (("bridge", bridge_at), ("bare", bare_at))
        }
        b, f = calls["bridge"], calls["bare"]
        calls["ratio"] = b / f if b is not None and f else None
        b, f = p50["bridge"], p50["bare"]
        p50["diff_ms"] = b - f if b is not None and f is not None else None
        comparison[client] = {f"calls_per_s_{COMPARED_SESSIONS}": calls, f"p50_ms_{LATENCY_SESSIONS}": p50}
    return comparison


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _cpu(result: dict[str, Any], name: str) -> str:
    value = result.get("cpu_cores", {}).get(name)
    return "-" if value is None else f"{value * 100:.0f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, two spaces apart, indented by three."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "   "
        + "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]


def _latency(res: dict[str, Any], clients: Sequence[str]) -> list[str]:
    at = {(name, r["client"], r["sessions"]): r for name in CONTENDERS for r in res[name]}
    rows: list[tuple[str, dict[str, Any]]] = [("direct stdio (blocking pipe client)", res["direct_stdio"])]
    for client in clients:
        rows += [
            (f"through the bridge ({client} client)", at.get(("bridge", client, LATENCY_SESSIONS), {})),
            (f"through the bare forwarder ({client} client)", at.get(("bare", client, LATENCY_SESSIONS), {})),
            (f"trivial HTTP server ({client} client's floor)", at.get(("ceiling", client, LATENCY_SESSIONS), {})),
        ]
    return table(
        ["", "p50 ms", "p90 ms", "p99 ms", "calls"],
        [
            [
                label,
                *(_fmt(row.get(k), ".3f") for k in ("p50_ms", "p90_ms", "p99_ms")),
                _fmt(row.get("calls_in_window"), "d"),
            ]
            for label, row in rows
        ],
    )


def _throughput(res: dict[str, Any], clients: Sequence[str]) -> list[str]:
    rank = list(CONTENDERS)
    rows = sorted(
        ((name, r) for name in CONTENDERS for r in res[name]),
        key=lambda item: (clients.index(item[1]["client"]), item[1]["sessions"], rank.index(item[0])),
    )
    return table(
        [
            "",
            "client",
            "sessions",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "gen CPU",
            "server CPU",
            "child",
            "others",
            "steal",
            "fail",
        ],
        [
            [
                CONTENDERS[name],
                row["client"],
                str(row["sessions"]),
                _fmt(row.get("calls_per_s"), ".0f"),
                _fmt(row.get("p50_ms"), ".3f"),
                _fmt(row.get("p99_ms"), ".3f"),
                _cpu(row, "generator"),
                _cpu(row, SERVER_CPU[name]),
                _cpu(row, "child"),
                _cpu(row, "others"),
                _cpu(row, "steal"),
                str(row["failures"]),
            ]
            for name, row in rows
        ],
    )


def _comparison(comparison: dict[str, Any]) -> list[str]:
    lines = []
    for client, numbers in comparison.items():
        calls = numbers[f"calls_per_s_{COMPARED_SESSIONS}"]
        p50 = numbers[f"p50_ms_{LATENCY_SESSIONS}"]
        lines.append(
            f"   {client} client: calls/s at {COMPARED_SESSIONS} sessions {_fmt(calls['bridge'], '.0f')} vs. "
            f"{_fmt(calls['bare'], '.0f')}, bridge/bare {_fmt(calls['ratio'], '.2f')}; "
            f"p50 at {LATENCY_SESSIONS} session {_fmt(p50['bridge'], '.3f')} vs. {_fmt(p50['bare'], '.3f')} ms, "
            f"bridge - bare {_fmt(p50['diff_ms'], '+.3f')} ms"
        )
    return lines


def _targets(res: dict[str, Any], clients: Sequence[str]) -> list[str]:
    def verdict(value: float | None, ok: bool, spec: str) -> str:
        return f"{_fmt(value, spec)} {'met' if ok else 'MISSED'}"

    bridge_at = {(r["client"], r["sessions"]): r for r in res["bridge"]}
    per_client = []
    for client in clients:
        calls: float | None = bridge_at.get((client, COMPARED_SESSIONS), {}).get("calls_per_s")
        p50: float | None = bridge_at.get((client, LATENCY_SESSIONS), {}).get("p50_ms")
        per_client.append(
            f"{client}: {verdict(calls, calls is not None and calls >= TARGET_CALLS_PER_S_16, '.0f')} calls/s, "
            f"p50 {verdict(p50, p50 is not None and p50 < TARGET_P50_MS_1, '.3f')}"
        )
    hwm: float = res["bridge_memory"]["after_load"]["vm_hwm_mb"]
    share: float = res["cold_start"]["bridge_share_ms"]
    return [
        "Targets (informational; they do not change the exit status)",
        f"   calls/s at {COMPARED_SESSIONS} sessions >= {TARGET_CALLS_PER_S_16:.0f}, "
        f"p50 at {LATENCY_SESSIONS} session < {TARGET_P50_MS_1} ms: " + "; ".join(per_client),
        f"   VmHWM < {TARGET_RSS_MB:.0f} MB: {verdict(hwm, hwm < TARGET_RSS_MB, '.1f')}; "
        f"bridge's start share < {TARGET_READY_OVER_CHILD_MS:.0f} ms: "
        f"{verdict(share, share < TARGET_READY_OVER_CHILD_MS, '.0f')}",
    ]


def render(report: dict[str, Any]) -> str:
    res = report["results"]
    cold, memory, bare_memory = res["cold_start"], res["bridge_memory"], res["bare_memory"]
    clients: list[str] = report["config"]["clients"]
    lines = [
        f"plexus-bridge stdio benchmark at {report['config']['revision']}: echo server, "
        f"{report['config']['seconds']:g} s windows, {report['machine']['cpus']} CPUs, "
        f"Python {report['machine']['python']}",
        "",
        "1. Latency of tools/call echo, 1 session, back to back",
        *_latency(res, clients),
        "",
        "2. Throughput (calls completed in the window; bridge and bare forwarder back to back, leading in turn)",
        *_throughput(res, clients),
        "   CPU: share of one core in the window (2 CPUs = 200%); server: the bridge, the bare forwarder or the "
        "trivial server;",
        "   child: its echo server; others: all other processes; steal: by the hypervisor",
        "",
        f"3. Cold start, ms (median of {COLD_START_RUNS}; echo server alone: of {CHILD_START_RUNS}): echo server alone "
        f"{cold['child_initialize_ms']:.0f}; bridge spawn -> /readyz 200 {cold['bridge_ready_ms']:.0f}, "
        f"-> first tools/call {cold['bridge_first_call_ms']:.0f}; bridge's share {cold['bridge_share_ms']:.0f}",
        f"   after ready, the bridge went quiet (< {QUIET_CPU:.0%} CPU for {QUIET_SLICES * QUIET_SLICE:g} s) after "
        f"{memory['ready_to_quiet_s']:.1f} s, the bare forwarder after {bare_memory['ready_to_quiet_s']:.1f} s; "
        "the load waited for both",
        f"4. Memory, VmHWM after load (VmRSS idle / after load), process alone: bridge "
        f"{memory['after_load']['vm_hwm_mb']:.1f} MB ({memory['idle']['vm_rss_mb']:.1f} / "
        f"{memory['after_load']['vm_rss_mb']:.1f}); bare forwarder {bare_memory['after_load']['vm_hwm_mb']:.1f} MB "
        f"({bare_memory['idle']['vm_rss_mb']:.1f} / {bare_memory['after_load']['vm_rss_mb']:.1f})",
        "",
        "5. Bridge vs. bare forwarder (the least a Python stdio forwarder does; same generator, back to back)",
        *_comparison(res["comparison"]),
        "",
        *_targets(res, clients),
        f"Verification failures: {report['failures']}",
    ]
    for section in (*(res[name] for name in CONTENDERS), [res["direct_stdio"]]):
        for row in section:
            lines += [f"   {sample}" for sample in row.get("failure_samples", [])]
    return "\n".join(lines)
