"""Per-target Prometheus metrics of the aggregator, added to the front's `/metrics`.

Like the bridge's own request metrics, observations are plain dict updates on the event loop, turned into metric
families only when scraped; target health and list sizes are read from the registry at that moment. Label values
are bounded: target names come from the configuration, methods are the four the aggregator routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aggregator.registry import TargetState
from bridge.metrics import LatencyHistograms

__all__ = ["TargetMetrics"]


class TargetMetrics(Collector):
    """Requests per target by method and outcome, their latency, target health, list sizes, cache hits."""

    def __init__(self, states: Callable[[], Mapping[str, TargetState]]) -> None:
        self._states = states
        self._counts: dict[tuple[str, str, str], int] = {}
        self._latency = LatencyHistograms()
        self._cache_hits: dict[str, int] = {}

    def observe(self, target: str, method: str, outcome: str, seconds: float) -> None:
        key = (target, method, outcome)
        self._counts[key] = self._counts.get(key, 0) + 1
        self._latency.observe(target, seconds)

    def cache_hit(self, key: str) -> None:
        """A list answered from the catalogue (every list is: there is no fan-out per request)."""
        self._cache_hits[key] = self._cache_hits.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "plexus_aggregator_target_requests",
            "Requests routed to a target, by method and outcome (ok, error, unavailable, cancelled).",
            labels=["target", "method", "outcome"],
        )
        for labels, count in sorted(self._counts.items()):
            requests.add_metric(list(labels), count)
        yield requests
        yield self._latency.family(
            "plexus_aggregator_target_request_duration_seconds",
            "Time from routing a request to a target to its reply.",
            "target",
        )
        hits = CounterMetricFamily(
            "plexus_aggregator_list_cache_hits", "Lists answered from the cached catalogue.", labels=["list"]
        )
        for key, count in sorted(self._cache_hits.items()):
            hits.add_metric([key], count)
        yield hits
        up = GaugeMetricFamily("plexus_aggregator_target_up", "1 when the target is up, else 0.", labels=["target"])
        tools = GaugeMetricFamily("plexus_aggregator_target_tools", "Tools the target offers.", labels=["target"])
        ping = GaugeMetricFamily(
            "plexus_aggregator_target_ping_seconds", "The target's last handshake or ping time.", labels=["target"]
        )
        for name, state in sorted(self._states().items()):
            up.add_metric([name], 1.0 if state.status == "up" else 0.0)
            tools.add_metric([name], len(state.lists.items.get("tools", ())))
            if state.latency_ms is not None:
                ping.add_metric([name], state.latency_ms / 1000)
        yield from (up, tools, ping)
