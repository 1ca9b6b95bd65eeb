"""Prometheus metrics of the rollout agent (labelled by edge id: a process may run several)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter("dist_events_applied_total", "Stream events applied", ["edge", "kind"])
TRANSFER_BYTES = Counter("dist_transfer_bytes_total", "Bytes downloaded for model files",
                         ["edge", "variant"])
TRANSFER_FAILURES = Counter("dist_transfer_failures_total",
                            "Downloads rejected (bad digest, failed patch, HTTP error)",
                            ["edge", "variant"])
ROLLOUT_FAILURES = Counter("dist_rollout_failures_total",
                           "Versions that could not be staged or activated", ["edge"])
RESYNCS = Counter("dist_resyncs_total", "Full resyncs from the origin's manifests", ["edge"])
STREAM_LAG = Gauge("dist_stream_lag_events", "Stream entries not yet applied", ["edge"])
PROPAGATION = Histogram("dist_propagation_seconds", "Publish to applied, per event",
                        ["edge", "kind"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
