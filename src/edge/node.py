"""`EdgeNode`: everything one node holds, independent of HTTP.

A prediction: resolve the model (the local registry, else the upstream's catalog) →
cache key (model name, content digest, canonical input digest) → L1 → L2 → the upstream
→ the local model (or the local model first: `EdgeConfig.miss_order`) → fill the tiers.
Concurrent misses for one key share one computation or fetch (single flight). When the
upstream cannot be reached, an entry expired less than `stale_grace_s` ago is served
(tier ``stale``), else the local model computes if the node holds it; otherwise the
request fails with `Unavailable` (HTTP 503).

Reachable from handlers and later code as ``app[NODE]`` (see `edge.app`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from aiohttp import web

from edge.artifacts import ArtifactStore
from edge.cache.disk import DiskL2
from edge.cache.memory import MemoryL1
from edge.cache.redis_l1 import RedisL1
from edge.cache.tiered import L1Store, TieredCache
from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.metrics import NodeMetrics
from edge.registry import ModelError, ModelRegistry, ModelVersion
from edge.tensors import ModelInfo, prediction_value
from edge.upstream import (
    MAX_HOPS,
    Upstream,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)


class Rollout(Protocol):
    """The model distribution agent of this node (see edge.distribution.wiring)."""

    @property
    def ready(self) -> bool: ...

    def record_request(self, model: str) -> None: ...

    def snapshot(self) -> dict: ...


class ModelNotFound(EdgeError, LookupError):
    pass


class Unavailable(EdgeError):
    """Neither the tiers, the local models nor the upstream can answer (HTTP 503)."""


class HitWindow:
    """Cache hit ratio over the last minute (six 10-second buckets), for /health."""

    BUCKET_S = 10.0

    def __init__(self) -> None:
        self._hits = [0] * 6
        self._total = [0] * 6
        self._bucket = int(time.monotonic() / self.BUCKET_S)

    def record(self, hit: bool) -> None:
        b = self._roll()
        self._total[b % 6] += 1
        if hit:
            self._hits[b % 6] += 1

    def ratio(self) -> float:
        self._roll()
        total = sum(self._total)
        return sum(self._hits) / total if total else 0.0

    def _roll(self) -> int:
        b = int(time.monotonic() / self.BUCKET_S)
        if b != self._bucket:
            for i in range(self._bucket + 1, min(b, self._bucket + 6) + 1):
                self._hits[i % 6] = self._total[i % 6] = 0
            self._bucket = b
        return b


class RemoteCatalog:
    """Metadata of models this node does not hold, learned from the upstream and trusted
    for `ttl_s` (then `grace_s` more while the upstream is unreachable)."""

    def __init__(self, upstream: Upstream, ttl_s: float, grace_s: float) -> None:
        self._upstream = upstream
        self._ttl_s = ttl_s
        self._grace_s = grace_s
        self._entries: dict[tuple[str, str | None], tuple[dict, ModelInfo, float]] = {}
        self._fetches: dict[tuple[str, str | None], asyncio.Task] = {}

    async def get(self, name: str, version: str | None, hops: int) -> tuple[dict, ModelInfo]:
        key = (name, version)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry and now - entry[2] < self._ttl_s:
            return entry[0], entry[1]
        task = self._fetches.get(key)
        if task is None:
            task = asyncio.ensure_future(self._upstream.model_metadata(name, version, hops))
            self._fetches[key] = task
            task.add_done_callback(lambda _t: self._fetches.pop(key, None))
        try:
            doc = await asyncio.shield(task)
        except UpstreamUnavailable:
            if entry and now - entry[2] < self._ttl_s + self._grace_s:
                return entry[0], entry[1]
            raise
        info = ModelInfo.from_metadata(doc)
        self._entries[key] = (doc, info, time.monotonic())
        return doc, info

    def peek(self, name: str, version: str | None) -> ModelInfo | None:
        """The known info if still fresh, without asking the upstream."""
        entry = self._entries.get((name, version))
        if entry and time.monotonic() - entry[2] < self._ttl_s:
            return entry[1]
        return None

    def forget(self, name: str) -> None:
        for key in [k for k in self._entries if k[0] == name]:
            del self._entries[key]


class EdgeNode:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.metrics = NodeMetrics()
        self.registry = ModelRegistry(max_batch=config.max_batch,
                                      max_delay_s=config.max_queue_delay_ms / 1000,
                                      intra_op_threads=config.inference_threads,
                                      observer=self.metrics.batch_observer)
        l1: L1Store
        if config.l1 == "redis":
            assert config.redis_url
            l1 = RedisL1(config.redis_url, config.redis_prefix, retain_s=config.stale_grace_s)
        else:
            l1 = MemoryL1(config.l1_bytes)
        self.cache = TieredCache(
            l1, DiskL2(config.cache_root / "l2", config.l2_bytes, fsync=config.l2_fsync),
            l1_ttl_s=config.l1_ttl_s, l2_ttl_s=config.l2_ttl_s, grace_s=config.stale_grace_s,
            metrics=self.metrics)
        self.upstream = Upstream(config.upstream, config.upstream_timeout_s) \
            if config.upstream else None
        self.catalog = RemoteCatalog(self.upstream, config.catalog_ttl_s, config.stale_grace_s) \
            if self.upstream else None
        self.artifacts = ArtifactStore(self, config.cache_root / "artifacts",
                                       config.artifact_bytes)
        self.draining = False
        self.inflight = 0
        self.started = time.time()
        self.hits = HitWindow()
        self._flights: dict[str, asyncio.Task] = {}
        self._loads: dict[str, asyncio.Task] = {}
        self._upstream_hit = self.metrics.tier_hits.labels("upstream")
        self._upstream_miss = self.metrics.tier_misses.labels("upstream")
        self._upstream_err = self.metrics.tier_errors.labels("upstream")
        self._per_model: dict[str, tuple] = {}
        # digests of local models whose version the upstream runs from another file
        self._upstream_differs: set[str] = set()
        self._background: list[asyncio.Task] = []
        self.rollout: Rollout | None = None

    # -- life ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.config.models_dir:
            await asyncio.to_thread(self.registry.load_folder, Path(self.config.models_dir))
        self.cache.l2.start()
        if self.config.model_idle_unload_s > 0:
            self._background.append(asyncio.create_task(self._unload_idle_loop()))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await self.cache.l2.close()
        await self.cache.l1.close()
        if self.upstream:
            await self.upstream.close()
        self.registry.close()

    async def _unload_idle_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.config.model_idle_unload_s / 4))
            for name in self.registry.unload_idle(self.config.model_idle_unload_s):
                log.info("unloaded idle model %s", name)

    # -- models ----------------------------------------------------------------------
    async def resolve(self, name: str, version: str | None = None,
                      hops: int = 0) -> tuple[ModelInfo, ModelVersion | None]:
        """The model's info and, when this node holds it, the loaded version."""
        mv = self.registry.get(name, version)
        if mv is not None:
            return mv.info, mv
        mv = await self._reload(name, version)
        if mv is not None:
            return mv.info, mv
        if self.catalog is None:
            raise ModelNotFound(_not_found(name, version))
        try:
            return (await self.catalog.get(name, version, hops))[1], None
        except UpstreamUnavailable as e:
            raise Unavailable(f"model {name!r} is not held here and {e}") from None
        except UpstreamError as e:
            if e.status == 404:
                raise ModelNotFound(_not_found(name, version)) from None
            raise

    async def _reload(self, name: str, version: str | None) -> ModelVersion | None:
        """Load a model of the local folder that is not in memory (unloaded while idle)."""
        models_dir = self.config.models_dir
        if self.registry.get(name) is not None or not models_dir \
                or not (Path(models_dir) / name).is_dir():
            return None
        task = self._loads.get(name)
        if task is None:
            task = asyncio.ensure_future(
                asyncio.to_thread(self.registry.load_model, Path(models_dir), name))
            self._loads[name] = task
            task.add_done_callback(lambda _t: self._loads.pop(name, None))
        try:
            await asyncio.shield(task)
        except ModelError as e:
            log.error("%s", e)
            return None
        return self.registry.get(name, version)

    async def model_metadata(self, name: str, version: str | None, hops: int = 0) -> dict:
        info, mv = await self.resolve(name, version, hops)  # maps upstream errors
        if mv is not None:
            return info.metadata(self.registry.versions(name))
        assert self.catalog is not None  # resolve() found the model upstream
        return (await self.catalog.get(name, version, hops))[0]

    def current_info(self, name: str, version: str | None) -> ModelInfo | None:
        """What `name`/`version` resolves to right now, if known without any I/O."""
        mv = self.registry.get(name, version)
        if mv is not None:
            return mv.info
        return self.catalog.peek(name, version) if self.catalog else None

    # -- predictions -----------------------------------------------------------------
    async def l1_hit(self, info: ModelInfo, key: str) -> bytes | None:
        """A fresh L1 value for a key computed earlier (see http_predict's body aliases)."""
        value = await self.cache.l1_fresh(key)
        if value is not None:
            self.hits.record(True)
            self._model_counters(info.name)[0].inc()
        return value

    async def predict(self, info: ModelInfo, mv: ModelVersion | None,
                      feeds: dict[str, np.ndarray], version: str | None = None,
                      hops: int = 0, key: str | None = None) -> tuple[bytes, str]:
        """(cache value, tier) for one request; tier is l1, l2, compute, stale or
        upstream/<the upstream's tier>. `key` is `info.cache_key(feeds)` if known."""
        key = key or info.cache_key(feeds)
        if self.rollout is not None:
            self.rollout.record_request(info.name)
        found = await self.cache.get(key)
        hit, miss = self._model_counters(info.name)
        if found.value is not None:
            self.hits.record(True)
            hit.inc()
            return found.value, found.tier  # type: ignore[return-value]
        self.hits.record(False)
        miss.inc()
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, info, mv, feeds, version,
                                                    found.stale, hops))
            self._flights[key] = task
            task.add_done_callback(lambda t: self._flight_done(key, t))
        else:
            self.metrics.coalesced.inc()
        return await asyncio.shield(task)

    def _flight_done(self, key: str, task: asyncio.Task) -> None:
        self._flights.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, raised to every waiter

    def _model_counters(self, name: str) -> tuple:
        counters = self._per_model.get(name)
        if counters is None:
            m = self.metrics
            counters = (m.hot(m.cache_hits, name), m.hot(m.cache_misses, name))
            self._per_model[name] = counters
        return counters

    async def _fill(self, key: str, info: ModelInfo, mv: ModelVersion | None,
                    feeds: dict[str, np.ndarray], version: str | None, stale: bytes | None,
                    hops: int) -> tuple[bytes, str]:
        """A miss: the upstream, then the local model (see `EdgeConfig.miss_order`)."""
        local_first = self.config.miss_order == "local-first" \
            or info.digest in self._upstream_differs
        if mv is not None and (self.upstream is None or local_first or hops >= MAX_HOPS):
            return await self._compute(key, info, mv, feeds)
        if self.upstream is None:
            raise ModelNotFound(_not_found(info.name, version))
        if hops >= MAX_HOPS:
            raise UpstreamError(f"more than {MAX_HOPS} upstream hops: check the upstream "
                                "configuration for a loop", 508)
        try:
            value, tier, up_version, digest = await self._ask_upstream(info, mv, version,
                                                                       feeds, hops)
        except UpstreamUnavailable as e:
            self._upstream_err.inc()
            if stale is not None:
                self.metrics.stale_served.inc()
                return stale, "stale"
            if mv is not None:
                return await self._compute(key, info, mv, feeds)
            raise Unavailable(f"no fresh or stale entry and {e}") from None
        except UpstreamError:
            if mv is None:
                raise
            self._upstream_err.inc()  # e.g. the upstream no longer holds this version
            return await self._compute(key, info, mv, feeds)
        (self._upstream_miss if tier.endswith("compute") else self._upstream_hit).inc()
        if digest != info.digest:
            if mv is not None:  # same version, other file (e.g. our INT8 variant): its
                self._upstream_differs.add(info.digest)  # answers are not ours to cache
                return await self._compute(key, info, mv, feeds)
            # the upstream moved to another version meanwhile
            assert self.catalog is not None
            self.catalog.forget(info.name)
            info = dataclasses.replace(info, version=up_version, digest=digest)
            key = info.cache_key(feeds)
        await self.cache.put(key, value, info.tags)
        return value, "upstream/" + tier

    async def _ask_upstream(self, info: ModelInfo, mv: ModelVersion | None,
                            version: str | None, feeds: dict[str, np.ndarray],
                            hops: int) -> tuple[bytes, str, str, str]:
        """The upstream's answer for exactly the version this node resolved (the one its
        answer will claim: rows of one batch never mix versions). When the upstream no
        longer holds that version of a model this node does not hold either, and the
        client named no version, the upstream's current version answers."""
        assert self.upstream is not None
        try:
            return await self.upstream.lookup(info, info.version, feeds, hops)
        except UpstreamRejected as e:
            if e.status != 404 or mv is not None or version is not None:
                raise
            return await self.upstream.lookup(info, None, feeds, hops)

    async def _compute(self, key: str, info: ModelInfo, mv: ModelVersion,
                       feeds: dict[str, np.ndarray]) -> tuple[bytes, str]:
        value = prediction_value(info, await mv.infer(feeds))
        await self.cache.put(key, value, info.tags)
        return value, "compute"

    # -- health ----------------------------------------------------------------------
    @property
    def load(self) -> float:
        return min(1.0, self.inflight / self.config.capacity)

    def health(self) -> dict:
        l1_ok = getattr(self.cache.l1, "ok", True)
        upstream_ok = self.upstream.ok if self.upstream else True
        if self.draining:
            status = "draining"
        elif self.rollout is not None and not self.rollout.ready:
            status = "syncing"  # not caught up with the model/invalidation stream yet
        elif not l1_ok or not upstream_ok or self.load >= 1.0:
            status = "degraded"
        else:
            status = "ok"
        active = self.registry.active()
        queue_ms = max((mv.batcher.queue_delay_ewma for mv in active.values()), default=0.0)
        return {
            "status": status,
            "load": round(self.load, 4),
            "hit_rate": round(self.hits.ratio(), 4),
            "models": {name: mv.version for name, mv in active.items()},
            "region": self.config.region,
            "location": list(self.config.location) if self.config.location else None,
            "role": "origin" if self.config.is_origin else "edge",
            "inflight": self.inflight,
            "capacity": self.config.capacity,
            "queue_delay_ms": round(queue_ms * 1000, 3),
            "l1": self.cache.l1.stats(),
            "l2": self.cache.l2.stats(),
            "upstream": {"url": self.config.upstream, "ok": upstream_ok}
            if self.upstream else None,
            "uptime_s": round(time.time() - self.started, 1),
            "rollout": self.rollout.snapshot() if self.rollout is not None else None,
        }


NODE = web.AppKey("edge_node", EdgeNode)


def _not_found(name: str, version: str | None) -> str:
    return f"unknown model {name!r}" + (f" version {version!r}" if version else "")
