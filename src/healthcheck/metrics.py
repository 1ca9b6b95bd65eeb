"""Prometheus metrics of the health checker (default registry)."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from geodns.metrics import SCRAPED
from geodns.steering.health import Status

STATE_CHANGES = Counter(
    "healthcheck_state_changes_total",
    "Status changes of a probe target (or of a member's effective state)",
    ["target", "to"],
)


class StateSource(Protocol):
    def statuses(self) -> Iterable[tuple[str, str, str, Status]]: ...


class MemberStates(Collector):
    """`healthcheck_member_state{zone,pool,member,state}`, made from each health
    service's states when scraped. (A Gauge holds an object per member and state, about
    800 octets: 13 MiB for a zone of 4,000 members, and as many to set on a change.)"""

    def __init__(self) -> None:
        self._sources: weakref.WeakSet[StateSource] = weakref.WeakSet()

    def watch(self, source: StateSource) -> None:
        self._sources.add(source)

    def forget(self, source: StateSource) -> None:
        self._sources.discard(source)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "healthcheck_member_state",
            "1 for the member's current effective state, 0 for the others",
            labels=["zone", "pool", "member", "state"],
        )
        seen: set[tuple[str, str, str]] = set()  # two services may watch one member
        for source in list(self._sources):
            for zone, pool, member, status in source.statuses():
                if (zone, pool, member) in seen:
                    continue
                seen.add((zone, pool, member))
                for state in Status:
                    family.add_metric([zone, pool, member, state.value],
                                      1 if status == state else 0)
        yield family


MEMBER_STATE = MemberStates()
REGISTRY.register(MEMBER_STATE)
SCRAPED.append(MEMBER_STATE)
PROBE_LATENCY = Histogram(
    "healthcheck_probe_duration_seconds",
    "Time a probe took, by probe type",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PROBE_RESULTS = Counter(
    "healthcheck_probe_results_total", "Probe results by target", ["target", "result"]
)
REDIS_UP = Gauge("healthcheck_redis_up", "1 while the shared Redis state is readable")
VANTAGES_LIVE = Gauge("healthcheck_vantages_live", "Vantage points publishing to Redis")
