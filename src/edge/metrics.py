"""Prometheus metrics and Triton's statistics of one node, in a registry of its own
(several nodes can run in one process, e.g. in tests).

Per model version, `ModelStats` holds Triton's statistics: they answer
``/v2/models/{m}/stats`` (and gRPC ``ModelStatistics``) and are exposed under Triton's
metric names and meanings, counters without a ``_total`` suffix as Triton writes them:

* ``nv_inference_request_success`` / ``nv_inference_request_failure``: inference requests
  this node answered (from any tier: cache hits and upstream answers count) or failed;
  one per request whatever its batch size.
* ``nv_inference_count`` rows inferred by this node's models, ``nv_inference_exec_count``
  model executions (batches): neither counts answers from a cache or the upstream.
* ``nv_inference_request_duration_us`` cumulative time to answer successful requests;
  ``nv_inference_queue_duration_us`` / ``nv_inference_compute_infer_duration_us``
  cumulative time requests waited for their batch / the model ran.
* ``nv_cache_num_hits_per_model`` / ``nv_cache_num_misses_per_model`` requests answered
  from this node's caches (L1, L2, stale) / not, and ``nv_cache_hit_duration_per_model`` /
  ``nv_cache_miss_duration_per_model`` their cumulative request time (us).
* ``nv_inference_pending_request_count`` (gauge) requests being answered.

Our own series (prometheus-client appends ``_total`` to these counters):

* ``edge_inference_request_duration_seconds{model,tier}`` (histogram): time to answer a
  request, per tier that answered it (l1, l2, stale, upstream, compute), for quantiles.
* ``edge_cache_hits_total{tier}`` / ``edge_cache_misses_total{tier}`` /
  ``edge_cache_errors_total{tier}``: per tier (l1, l2, upstream);
  ``edge_cache_corrupt_entries_total{tier}``: entries that failed their checksum (l2).
* ``edge_singleflight_waiters_total``: requests that waited on another's computation.
* ``edge_inference_batch_size`` (histogram of rows per batch),
  ``edge_inference_compute_seconds``, ``edge_inference_queue_delay_seconds``,
  ``edge_stale_served_total``, ``edge_http_requests_total{endpoint,status}``,
  ``edge_inflight_requests``; and the process's ``process_*`` series.

Counters bumped on every request (HTTP requests, tier hits and misses) go through
`HotCounter`: a plain integer moved into the prometheus child before every scrape. The
request-duration histogram is `DurationHistogram`, a collector of our own whose
observation is a bisect and two additions.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from edge.batcher import BatchObserver

DURATION_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0)


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


class _Series:
    """One labelled series of a `DurationHistogram`: a count per bucket (+Inf last), and
    the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.total += seconds


class DurationHistogram:
    """A histogram over `DURATION_BUCKETS` (and +Inf) for the request path, exposed as a
    prometheus collector: prometheus-client's own takes a lock for the sum and for the
    bucket it finds by walking the bounds. Like prometheus-client's with created series
    disabled, it exposes no ``_created`` series."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._series: dict[tuple[str, ...], _Series] = {}
        registry.register(self)

    def series(self, *labels: str) -> _Series:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series()
        return series

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        bounds = [floatToGoString(b) for b in (*DURATION_BUCKETS, float("inf"))]
        for labels, series in sorted(self._series.items()):
            family.add_metric(list(labels), list(zip(bounds, accumulate(series.counts),
                                                     strict=True)),
                              sum_value=series.total)
        yield family


@dataclass(slots=True)
class Duration:
    """Triton's ``{"count": n, "ns": cumulative nanoseconds}``."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


LOCAL_TIERS = frozenset({"l1", "l2", "stale"})  # answers from this node's own caches


@dataclass(slots=True)
class ModelStats:
    """Triton's statistics of one model version on this node."""

    name: str
    version: str
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    cache_hit: Duration = field(default_factory=Duration)
    cache_miss: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    pending: int = 0

    def to_json(self) -> dict:
        """The ``model_stats`` item of Triton's statistics extension. Input and output
        handling are counted within the inference (their own times are 0), as clients
        such as perf_analyzer require equal compute counts."""
        zero = {"count": self.compute_infer.count, "ns": 0}
        return {
            "name": self.name, "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_json(), "fail": self.fail.to_json(),
                "queue": self.queue.to_json(), "compute_input": zero,
                "compute_infer": self.compute_infer.to_json(), "compute_output": zero,
                "cache_hit": self.cache_hit.to_json(), "cache_miss": self.cache_miss.to_json(),
            },
            "batch_stats": [],
        }


# Triton's families: (name, type, help, value of a ModelStats)
_TRITON = (
    ("nv_inference_request_success", "counter",
     "Number of successful inference requests, all batch sizes", lambda s: s.success.count),
    ("nv_inference_request_failure", "counter",
     "Number of failed inference requests, all batch sizes", lambda s: s.fail.count),
    ("nv_inference_count", "counter", "Number of inferences performed (does not include "
     "cached requests)", lambda s: s.inference_count),
    ("nv_inference_exec_count", "counter", "Number of model executions performed (does not "
     "include cached requests)", lambda s: s.execution_count),
    ("nv_inference_request_duration_us", "counter",
     "Cumulative inference request duration in microseconds (includes cached requests)",
     lambda s: s.success.ns / 1000),
    ("nv_inference_queue_duration_us", "counter",
     "Cumulative inference queuing duration in microseconds", lambda s: s.queue.ns / 1000),
    ("nv_inference_compute_infer_duration_us", "counter",
     "Cumulative compute inference duration in microseconds (does not include cached "
     "requests)", lambda s: s.compute_infer.ns / 1000),
    ("nv_cache_num_hits_per_model", "counter", "Number of cache hits per model",
     lambda s: s.cache_hit.count),
    ("nv_cache_num_misses_per_model", "counter", "Number of cache misses per model",
     lambda s: s.cache_miss.count),
    ("nv_cache_hit_duration_per_model", "counter", "Total cache hit duration per model, in "
     "microseconds", lambda s: s.cache_hit.ns / 1000),
    ("nv_cache_miss_duration_per_model", "counter", "Total cache miss duration per model, in "
     "microseconds", lambda s: s.cache_miss.ns / 1000),
    ("nv_inference_pending_request_count", "gauge",
     "Instantaneous number of pending requests awaiting execution per-model.",
     lambda s: s.pending),
)


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


class NodeMetrics:
    def __init__(self) -> None:
        self._hot: list[HotCounter] = []
        self._models: dict[tuple[str, str], ModelStats] = {}
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
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
        self.coalesced = Counter("edge_singleflight_waiters",
                                 "Requests that waited on an identical in-flight miss",
                                 registry=r)
        self.stale_served = Counter("edge_stale_served", "Expired entries served in grace",
                                    registry=r)
        self.request_duration = DurationHistogram(
            "edge_inference_request_duration_seconds",
            "Time to answer an inference request, by the tier that answered it",
            ("model", "tier"), r)
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

    # -- Triton's statistics ---------------------------------------------------------
    def model(self, name: str, version: str) -> ModelStats:
        """The statistics of a model version this node resolved (names are bounded by the
        models that exist: unknown names never get here)."""
        stats = self._models.get((name, version))
        if stats is None:
            stats = self._models[(name, version)] = ModelStats(name, version)
        return stats

    def model_stats(self, name: str | None = None,
                    version: str | None = None) -> list[ModelStats]:
        return [s for (n, v), s in sorted(self._models.items())
                if (name is None or n == name) and (version is None or v == version)]

    def track(self, name: str, version: str, started: float) -> Tracked:
        """``with metrics.track(model, version, perf_counter_at_arrival) as t: ...;
        t.tier = tier``: the request is pending inside, then counted as answered by
        `t.tier`, or as failed when the block raises."""
        return Tracked(self, name, version, started)

    def request_done(self, name: str, version: str, tier: str, seconds: float) -> None:
        """One inference request answered (from any tier)."""
        stats = self.model(name, version)
        stats.success.add(seconds)
        stats.queue.count += 1  # every answered request, cache hits included (as Triton)
        stats.last_inference_ms = int(time.time() * 1000)
        (stats.cache_hit if tier in LOCAL_TIERS else stats.cache_miss).add(seconds)
        group = tier.partition("/")[0]  # upstream/<its tier> → upstream
        self.request_duration.series(name, group).observe(seconds)

    def request_failed(self, name: str, version: str, seconds: float) -> None:
        self.model(name, version).fail.add(seconds)

    def batch_observer(self, model: str, version: str) -> BatchObserver:
        return _Observer(self, self.model(model, version))

    # -- exposition ------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The text format for ``/metrics``: Triton's families as Triton writes them, then
        prometheus-client's."""
        self.flush()
        return "".join(self._triton_lines()).encode() + generate_latest(self.registry)

    def _triton_lines(self) -> Iterator[str]:
        stats = self.model_stats()
        for name, kind, doc, value in _TRITON:
            yield f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
            for s in stats:
                yield (f'{name}{{model="{_label(s.name)}",version="{_label(s.version)}"}} '
                       f"{floatToGoString(value(s))}\n")


class Tracked:
    __slots__ = ("metrics", "name", "version", "started", "tier")

    def __init__(self, metrics: NodeMetrics, name: str, version: str, started: float) -> None:
        self.metrics, self.name, self.version, self.started = metrics, name, version, started
        self.tier = ""

    def __enter__(self) -> Tracked:
        self.metrics.model(self.name, self.version).pending += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.metrics.model(self.name, self.version).pending -= 1
        seconds = time.perf_counter() - self.started
        if exc_type is None and self.tier:
            self.metrics.request_done(self.name, self.version, self.tier, seconds)
        else:
            self.metrics.request_failed(self.name, self.version, seconds)


class _Observer(BatchObserver):
    def __init__(self, m: NodeMetrics, stats: ModelStats) -> None:
        self.m = m
        self.stats = stats

    def batch_done(self, rows: int, requests: int, queue_s: list[float], compute_s: float,
                   ok: bool) -> None:
        if not ok:
            return
        s = self.stats
        s.inference_count += rows
        s.execution_count += 1
        s.compute_infer.add(compute_s * requests, requests)
        s.queue.add(sum(queue_s), 0)  # counted per answered request (`request_done`)
        self.m.batch_size.observe(rows)
        self.m.compute_seconds.observe(compute_s)
        for q in queue_s:
            self.m.queue_delay.observe(q)
