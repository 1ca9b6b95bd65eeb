"""Prometheus metrics of one rollout agent, in the registry it is given (the node's own
registry, so they appear on the node's /metrics; several nodes may share a process).

* ``dist_events_applied_total{kind}``: stream entries applied (activate, stage,
  rollback, purge).
* ``dist_transfer_bytes_total{variant}``: bytes downloaded per variant (delta, zstd, full).
* ``dist_transfer_failures_total{variant}``: downloads rejected (bad digest, failed
  patch, HTTP error); the next variant is tried.
* ``dist_rollout_failures_total``: versions that could not be staged or activated (the
  old version kept serving).
* ``dist_resyncs_total``: full resyncs from the origin's manifests.
* ``dist_stream_lag_entries``: stream entries not yet applied.
* ``dist_propagation_seconds{kind}``: publish → applied on this node.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.events_applied = Counter("dist_events_applied", "Stream entries applied",
                                      ["kind"], registry=r)
        self.transfer_bytes = Counter("dist_transfer_bytes", "Bytes downloaded for model files",
                                      ["variant"], registry=r)
        self.transfer_failures = Counter(
            "dist_transfer_failures", "Downloads rejected (bad digest, failed patch, HTTP error)",
            ["variant"], registry=r)
        self.rollout_failures = Counter(
            "dist_rollout_failures", "Versions that could not be staged or activated",
            registry=r)
        self.resyncs = Counter("dist_resyncs", "Full resyncs from the origin's manifests",
                               registry=r)
        self.stream_lag = Gauge("dist_stream_lag_entries", "Stream entries not yet applied",
                                registry=r)
        self.propagation = Histogram(
            "dist_propagation_seconds", "Publish to applied on this node", ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
