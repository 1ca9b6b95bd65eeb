"""Prometheus metrics of one node, in a registry of its own (several nodes can run in one
process, e.g. in tests). Names follow Triton's where the meaning matches:

* ``nv_inference_request_success`` / ``nv_inference_request_failure`` (per model,
  version): inference requests answered by this node's model;
  ``nv_inference_count`` rows inferred; ``nv_inference_exec_count`` batches executed;
  ``nv_inference_queue_duration_us`` / ``nv_inference_compute_infer_duration_us``
  cumulative microseconds waiting for a batch / computing.
* ``nv_cache_num_hits_per_model`` / ``nv_cache_num_misses_per_model``: prediction cache
  hits (any tier of this node) and misses.
* ``edge_cache_hits_total{tier}`` / ``edge_cache_misses_total{tier}`` /
  ``edge_cache_errors_total{tier}``: per tier (l1, l2, upstream);
  ``edge_cache_corrupt_entries_total{tier}``: entries that failed their checksum (l2).
* ``edge_singleflight_waiters_total``: requests that waited on another's computation.
* ``edge_inference_batch_size`` (histogram of rows per batch),
  ``edge_inference_compute_seconds``, ``edge_inference_queue_delay_seconds``,
  ``edge_stale_served_total``, ``edge_http_requests_total{endpoint,status}``,
  ``edge_inflight_requests``.

prometheus-client appends ``_total`` to counter names in the exposition. Counters bumped
on every request (HTTP requests, tier and per-model cache hits and misses) go through
`HotCounter`: a plain integer moved into the prometheus child before every scrape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edge.batcher import BatchObserver


class HotCounter:
    """A labelled counter child for the request path. A prometheus child's `inc()` takes a
    lock and four more calls; this adds to an int, and `NodeMetrics.flush()` moves the
    count into the child (before every scrape)."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.pending = 0

    def inc(self, amount: int = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            self.child.inc(self.pending)
            self.pending = 0


class NodeMetrics:
    def __init__(self) -> None:
        self._hot: list[HotCounter] = []
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter("edge_http_requests", "HTTP requests by route and status",
                                     ["endpoint", "status"], registry=r)
        self.inflight = Gauge("edge_inflight_requests", "HTTP requests being served",
                              registry=r)
        self.tier_hits = Counter("edge_cache_hits", "Cache hits per tier", ["tier"], registry=r)
        self.tier_misses = Counter("edge_cache_misses", "Cache misses per tier", ["tier"],
                                   registry=r)
        self.tier_errors = Counter("edge_cache_errors", "Failed or skipped tier operations",
                                   ["tier"], registry=r)
        self.corrupt = Counter("edge_cache_corrupt_entries",
                               "Entries that failed their key or checksum check on read "
                               "(dropped, never served)", ["tier"], registry=r)
        self.cache_hits = Counter("nv_cache_num_hits_per_model", "Prediction cache hits",
                                  ["model"], registry=r)
        self.cache_misses = Counter("nv_cache_num_misses_per_model",
                                    "Prediction cache misses", ["model"], registry=r)
        self.coalesced = Counter("edge_singleflight_waiters",
                                 "Requests that waited on an identical in-flight miss",
                                 registry=r)
        self.stale_served = Counter("edge_stale_served", "Expired entries served in grace",
                                    registry=r)
        self.success = Counter("nv_inference_request_success", "Successful inference requests",
                               ["model", "version"], registry=r)
        self.failure = Counter("nv_inference_request_failure", "Failed inference requests",
                               ["model", "version"], registry=r)
        self.inference_count = Counter("nv_inference_count", "Rows inferred",
                                       ["model", "version"], registry=r)
        self.exec_count = Counter("nv_inference_exec_count", "Inference batches executed",
                                  ["model", "version"], registry=r)
        self.queue_us = Counter("nv_inference_queue_duration_us",
                                "Cumulative time requests waited for their batch (us)",
                                ["model", "version"], registry=r)
        self.compute_us = Counter("nv_inference_compute_infer_duration_us",
                                  "Cumulative inference compute time (us)",
                                  ["model", "version"], registry=r)
        self.batch_size = Histogram("edge_inference_batch_size", "Rows per inference batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.compute_seconds = Histogram("edge_inference_compute_seconds",
                                         "Time to run one inference batch",
                                         buckets=(1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1,
                                                  0.5), registry=r)
        self.queue_delay = Histogram("edge_inference_queue_delay_seconds",
                                     "Time a request waited for its batch",
                                     buckets=(1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1),
                                     registry=r)

    def hot(self, counter: Counter, *labels: str) -> HotCounter:
        """The child of `counter` for `labels`, counted cheaply (see `HotCounter`)."""
        hot = HotCounter(counter.labels(*labels))
        self._hot.append(hot)
        return hot

    def flush(self) -> None:
        for hot in self._hot:
            hot.flush()

    def batch_observer(self, model: str, version: str) -> BatchObserver:
        return _Observer(self, model, version)


class _Observer(BatchObserver):
    def __init__(self, m: NodeMetrics, model: str, version: str) -> None:
        self.m = m
        labels = (model, version)
        self.success, self.failure = m.success.labels(*labels), m.failure.labels(*labels)
        self.count, self.execs = m.inference_count.labels(*labels), m.exec_count.labels(*labels)
        self.queue_us, self.compute_us = m.queue_us.labels(*labels), m.compute_us.labels(*labels)

    def batch_done(self, rows: int, requests: int, queue_s: list[float], compute_s: float,
                   ok: bool) -> None:
        (self.success if ok else self.failure).inc(requests)
        if not ok:
            return
        self.count.inc(rows)
        self.execs.inc()
        self.compute_us.inc(compute_s * 1e6)
        self.queue_us.inc(sum(queue_s) * 1e6)
        self.m.batch_size.observe(rows)
        self.m.compute_seconds.observe(compute_s)
        for q in queue_s:
            self.m.queue_delay.observe(q)
