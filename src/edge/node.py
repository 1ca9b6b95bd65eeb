"""`EdgeNode`: everything one node holds, independent of HTTP.

A prediction: resolve the model (the local registry, else the upstream's catalog) →
cache key (model name, content digest, canonical input digest) → the sources of
`edge.sources`, walked in order: L1 → L2, then for a miss the upstream → the local model
(or the local model first: `EdgeConfig.miss_order`), which fill the tiers. Concurrent
misses for one key share one walk of the miss order (single flight). When the upstream
cannot be reached, an entry expired less than `stale_grace_s` ago is served (tier
``stale``), else the local model computes if the node holds it; otherwise the request
fails with `Unavailable` (HTTP 503).

Reachable from handlers and later code as ``app[NODE]`` (see `edge.app`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from aiohttp import web

from edge.artifacts import ArtifactNotFound, ArtifactStore
from edge.cache.disk import DiskL2
from edge.cache.memory import MemoryL1
from edge.cache.redis_l1 import RedisL1
from edge.cache.tiered import L1Store, TieredCache
from edge.config import EdgeConfig
from edge.load import Utilization
from edge.metrics import NodeMetrics
from edge.registry import (
    SAFE_NAME,
    ModelError,
    ModelRegistry,
    ModelVersion,
    current_versions,
)
from edge.sources import (
    CacheTier,
    FromUpstream,
    LocalModel,
    Lookup,
    ModelNotFound,
    Source,
    Stale,
    Unavailable,
)
from edge.tensors import BadInput, ModelInfo
from edge.upstream import Upstream, UpstreamError, UpstreamUnavailable

log = logging.getLogger(__name__)
UPSTREAM_PROBE_S = 1.0


class Rollout(Protocol):
    """The model distribution agent of this node (see edge.distribution.wiring)."""

    @property
    def ready(self) -> bool: ...

    @property
    def problem(self) -> str | None: ...

    def record_request(self, model: str) -> None: ...

    def snapshot(self) -> dict: ...


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
        self.artifacts = ArtifactStore(config.cache_root / "artifacts",
                                       config.artifact_bytes, config.models_dir,
                                       self.upstream, self._current_version)
        self.draining = False
        self.utilization = Utilization(config.capacity)
        self.started = time.time()
        self.hits = HitWindow()
        self._flights: dict[str, asyncio.Task] = {}
        self._loads: dict[str, asyncio.Task] = {}
        # The sources of a prediction (edge.sources): the cache tiers on every request,
        # then the miss order once per key.
        self.cache_tiers: list[Source] = [CacheTier("l1", self.cache.l1_get),
                                          CacheTier("l2", self.cache.l2_get)]
        self._upstream = FromUpstream(self.upstream, self.cache, self.metrics,
                                      self.catalog.forget if self.catalog else _no_catalog)
        self._stale = Stale(self.metrics)
        self._local = LocalModel(self.cache)
        self._background: list[asyncio.Task] = []
        self.rollout: Rollout | None = None

    # -- life ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.config.models_dir:
            await asyncio.to_thread(self.registry.load_folder, Path(self.config.models_dir))
        self.cache.l2.start()
        if self.config.model_idle_unload_s > 0:
            self._background.append(asyncio.create_task(self._unload_idle_loop()))
        if self.upstream is not None:
            self._background.append(asyncio.create_task(self._watch_upstream()))

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

    async def _watch_upstream(self) -> None:
        """While the upstream is marked down, probe it every second: when every request
        is a cache hit, none would tell the node that it is back."""
        assert self.upstream is not None
        while True:
            await asyncio.sleep(UPSTREAM_PROBE_S)
            if not self.upstream.ok:
                await self.upstream.probe()

    # -- models ----------------------------------------------------------------------
    async def resolve(self, name: str, version: str | None = None,
                      hops: int = 0) -> tuple[ModelInfo, ModelVersion | None]:
        """The model's info and, when this node holds it, the loaded version. A name or
        version that could not be a folder name is refused before it reaches a path or
        the upstream's URL."""
        for part, what in ((name, "model name"), (version, "version")):
            if part is not None and not (isinstance(part, str) and SAFE_NAME.match(part)):
                raise BadInput(f"invalid {what} {part!r}: use 1-128 letters, digits, '.', "
                               "'_' or '-', starting with a letter or digit")
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

    async def _current_version(self, name: str, hops: int) -> str:
        """The version of `name` this node serves (or its model folder makes current),
        else the one its upstream serves (for the artifact version ``current``)."""
        mv = self.registry.get(name)
        if mv is not None:
            return mv.version
        models_dir = self.config.models_dir
        if models_dir and name in (found := current_versions(Path(models_dir))):
            return found[name]
        if self.upstream is None:
            raise ArtifactNotFound(f"unknown model {name!r}")
        return (await self.resolve(name, None, hops))[0].version

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
        return value

    async def predict(self, info: ModelInfo, mv: ModelVersion | None,
                      feeds: dict[str, np.ndarray], version: str | None = None,
                      hops: int = 0, key: str | None = None) -> tuple[bytes, str]:
        """(cache value, tier) for one request; tier is l1, l2, compute, stale or
        upstream/<the upstream's tier>. `key` is `info.cache_key(feeds)` if known."""
        lookup = Lookup(key or info.cache_key(feeds), info, mv, feeds, version, hops)
        if self.rollout is not None:
            self.rollout.record_request(info.name)
        for source in self.cache_tiers:
            found = await source.answer(lookup)
            if found is not None:
                self.hits.record(True)
                return found
        self.hits.record(False)
        task = self._flights.get(lookup.key)
        if task is None:
            task = asyncio.ensure_future(self._fill(lookup))
            self._flights[lookup.key] = task
            task.add_done_callback(lambda t: self._flight_done(lookup.key, t))
        else:
            self.metrics.coalesced.inc()
        return await asyncio.shield(task)

    def _flight_done(self, key: str, task: asyncio.Task) -> None:
        self._flights.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, raised to every waiter

    def miss_order(self, info: ModelInfo) -> list[Source]:
        """Where a miss goes, in order (see `EdgeConfig.miss_order`): a model whose
        version the upstream runs from another file is always computed here first."""
        if self.config.miss_order == "local-first" or info.digest in self._upstream.differs:
            return [self._local, self._upstream, self._stale]
        return [self._upstream, self._stale, self._local]

    async def _fill(self, lookup: Lookup) -> tuple[bytes, str]:
        """A miss: the first source of the miss order that answers."""
        for source in self.miss_order(lookup.info):
            found = await source.answer(lookup)
            if found is not None:
                return found
        if lookup.failure is not None:
            raise lookup.failure
        raise ModelNotFound(_not_found(lookup.info.name, lookup.version))

    # -- health ----------------------------------------------------------------------
    @property
    def inflight(self) -> int:
        return self.utilization.inflight

    @property
    def load(self) -> float:
        return self.utilization.load

    def health(self) -> dict:
        l1_ok = getattr(self.cache.l1, "ok", True)
        upstream_ok = self.upstream.ok if self.upstream else True
        if self.draining:
            status = "draining"
        elif self.rollout is not None and not self.rollout.ready:
            status = "syncing"  # not caught up with the model/invalidation stream yet
        elif not l1_ok or not upstream_ok or self.load >= 1.0 \
                or (self.rollout is not None and self.rollout.problem):
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


def _no_catalog(name: str) -> None:
    """The origin has no remote catalog to forget a model from."""


def _not_found(name: str, version: str | None) -> str:
    return f"unknown model {name!r}" + (f" version {version!r}" if version else "")
