"""Prometheus metrics of the health checker (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STATE_CHANGES = Counter(
    "healthcheck_state_changes_total",
    "Status changes of a probe target (or of a member's effective state)",
    ["target", "to"],
)
MEMBER_STATE = Gauge(
    "healthcheck_member_state",
    "1 for the member's current effective state, 0 for the others",
    ["zone", "pool", "member", "state"],
)
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
