"""Prometheus metrics of one bridge process, served at `/metrics`.

Request counts and latencies are kept in plain dicts and lists and turned into metric families only when scraped:
prometheus_client's own Counter and Histogram take a lock and run checks on every observation, which cost about
6 % of the bridge's throughput on the hot path. Each app has its own registry, so bridges (and tests) sharing a
process never share counters. Label values are bounded: methods outside the MCP method set count as `other`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "BridgeMetrics", "LatencyHistograms"]

KNOWN_METHODS: Final = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/list",
        "tasks/result",
        "tasks/cancel",
    }
)

LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class LatencyHistograms:
    """Latency histograms by one label, counted in plain lists on the event loop and turned into a family on scrape."""

    def __init__(self) -> None:
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, label: str, seconds: float) -> None:
        buckets = self._buckets.get(label)
        if buckets is None:
            buckets = self._buckets[label] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._sums[label] = 0.0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[label] += seconds

    def family(self, name: str, documentation: str, label: str) -> HistogramMetricFamily:
        latency = HistogramMetricFamily(name, documentation, labels=[label])
        for value, counts in sorted(self._buckets.items()):
            cumulative, total = [], 0
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                total += count
                cumulative.append((bound, total))
            latency.add_metric([value], cumulative, self._sums[value])
        return latency


class _RequestStats(Collector):
    """Requests by method and outcome, and their latency histogram, counted without locks on the event loop."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.latency = LatencyHistograms()

    def observe(self, method: str, outcome: str, seconds: float) -> None:
        if method not in KNOWN_METHODS:
            method = "other"
        key = (method, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.latency.observe(method, seconds)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "plexus_bridge_requests",
            "MCP requests answered, by method and outcome (ok, error, timeout, unavailable, rejected, disconnected).",
            labels=["method", "outcome"],
        )
        for (method, outcome), count in sorted(self.counts.items()):
            requests.add_metric([method, outcome], count)
        yield requests
        yield self.latency.family(
            "plexus_bridge_request_duration_seconds", "Time from a request's arrival to its reply, by method.", "method"
        )


class BridgeMetrics:
    """Requests by method and outcome, latency, server restarts, live sessions and requests in flight."""

    def __init__(self, sessions: Callable[[], int], inflight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self._stats = _RequestStats()
        self.registry.register(self._stats)
        self.observe = self._stats.observe
        self.restarts = Counter(
            "plexus_bridge_server_restarts",
            "Times the MCP server was restarted after it exited.",
            registry=self.registry,
        )
        Gauge("plexus_bridge_sessions", "Live client sessions.", registry=self.registry).set_function(
            lambda: sessions()
        )
        Gauge(
            "plexus_bridge_inflight_requests",
            "Requests sent to the MCP server and not yet answered.",
            registry=self.registry,
        ).set_function(lambda: inflight())

    def render(self) -> bytes:
        return generate_latest(self.registry)
