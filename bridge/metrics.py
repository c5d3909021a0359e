"""Prometheus metrics of one bridge process, served at `/metrics`.

Each app gets its own registry so that several bridges (and tests) in one process never share counters. Label
values are bounded: methods outside the MCP method set count as `other`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["BridgeMetrics"]

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


class BridgeMetrics:
    """Requests by method and outcome, latency, server restarts, live sessions and requests in flight."""

    def __init__(self, sessions: Callable[[], int], inflight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "plexus_bridge_requests",
            "MCP requests answered, by method and outcome (ok, error, timeout, unavailable, rejected).",
            ["method", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "plexus_bridge_request_duration_seconds",
            "Time from a request's arrival to its reply, by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, outcome: str, seconds: float) -> None:
        key = (method if method in KNOWN_METHODS else "other", outcome)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self._requests.labels(*key), self._latency.labels(key[0]))
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
