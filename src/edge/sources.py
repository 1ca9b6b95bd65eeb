"""Where a prediction comes from: the node's tiers behind one async interface.

A `Source` answers a `Lookup` (one prediction, under its cache key) with the cache value
and the tier that gave it, or with None: not here, ask the next source. `EdgeNode`
walks two lists of them: `L1` (memory or Redis) and `L2` (disk) on every request, then,
for a miss, once per key (single flight), the miss order: `FromUpstream`, `Stale`,
`LocalModel` (upstream-first) or `LocalModel`, `FromUpstream`, `Stale` (local-first).

A source records on the lookup what the next ones need: an expired value still within
the grace (`stale`, found by L1 or L2), or why the upstream could not answer
(`failure`; `Stale` serves only when the upstream was unreachable). An error that is the
client's (an unknown model, a bad input) is raised at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.cache.tiered import Lookup as CacheLookup
from edge.cache.tiered import TieredCache
from edge.metrics import NodeMetrics
from edge.registry import ModelVersion
from edge.tensors import ModelInfo, prediction_value
from edge.upstream import (
    MAX_HOPS,
    Upstream,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)

Answer = tuple[bytes, str]  # cache value, tier


class ModelNotFound(LookupError):
    pass


class Unavailable(Exception):
    """Neither the tiers, the local models nor the upstream can answer (HTTP 503)."""


@dataclass(slots=True)
class Lookup:
    key: str
    info: ModelInfo
    mv: ModelVersion | None  # the loaded version, when this node holds the model
    feeds: dict[str, np.ndarray]
    version: str | None  # as the client named it (None: the current one)
    hops: int
    stale: bytes | None = None  # expired less than the grace ago, found on the way
    failure: Exception | None = None  # why the upstream did not answer


class Source(Protocol):
    name: str

    async def answer(self, lookup: Lookup) -> Answer | None: ...


class CacheTier:
    """L1 or L2 of the node's `TieredCache`."""

    def __init__(self, name: str, get: Callable[[str], Awaitable[CacheLookup]]) -> None:
        self.name = name
        self._get = get

    async def answer(self, lookup: Lookup) -> Answer | None:
        found = await self._get(lookup.key)
        if found.value is not None:
            return found.value, self.name
        lookup.stale = lookup.stale or found.stale
        return None


class LocalModel:
    """The node's own copy of the model, when it holds the version asked for."""

    name = "local"

    def __init__(self, cache: TieredCache) -> None:
        self._cache = cache

    async def answer(self, lookup: Lookup) -> Answer | None:
        if lookup.mv is None:
            return None
        value = prediction_value(lookup.info, await lookup.mv.infer(lookup.feeds))
        await self._cache.put(lookup.key, value, lookup.info.tags)
        return value, "compute"


class Stale:
    """An expired entry within the grace, only while the upstream cannot be reached."""

    name = "stale"

    def __init__(self, metrics: NodeMetrics) -> None:
        self._served = metrics.stale_served

    async def answer(self, lookup: Lookup) -> Answer | None:
        if lookup.stale is None or not isinstance(lookup.failure, Unavailable):
            return None
        self._served.inc()
        return lookup.stale, "stale"


class FromUpstream:
    """The shield's or origin's answer (its own caches first), cached here."""

    name = "upstream"

    def __init__(self, upstream: Upstream | None, cache: TieredCache, metrics: NodeMetrics,
                 forget_remote: Callable[[str], None]) -> None:
        self._upstream = upstream
        self._cache = cache
        self._forget_remote = forget_remote  # the remote catalog's entry of a model
        self._hit = metrics.tier_hits.labels("upstream")
        self._miss = metrics.tier_misses.labels("upstream")
        self._error = metrics.tier_errors.labels("upstream")
        # digests of local models whose version the upstream runs from another file
        self.differs: set[str] = set()

    async def answer(self, lookup: Lookup) -> Answer | None:
        if self._upstream is None:
            return None
        info, mv = lookup.info, lookup.mv
        if lookup.hops >= MAX_HOPS:
            lookup.failure = UpstreamError(f"more than {MAX_HOPS} upstream hops: check the "
                                           "upstream configuration for a loop", 508)
            return None
        try:
            value, tier, up_version, digest = await self._ask(lookup)
        except UpstreamUnavailable as e:
            self._error.inc()
            lookup.failure = Unavailable(f"no fresh or stale entry and {e}")
            return None
        except UpstreamRejected as e:
            if mv is None or e.status != 404:
                raise  # the client's error (a bad input) at every tier: not an outage
            self._error.inc()  # the upstream no longer holds this version
            return None
        (self._miss if tier.endswith("compute") else self._hit).inc()
        key = lookup.key
        if digest != info.digest:
            if mv is not None:  # same version, other file (e.g. our INT8 variant): its
                self.differs.add(info.digest)  # answers are not ours to cache
                return None
            # the upstream moved to another version meanwhile
            self._forget_remote(info.name)
            info = dataclasses.replace(info, version=up_version, digest=digest)
            key = info.cache_key(lookup.feeds)
        await self._cache.put(key, value, info.tags)
        return value, "upstream/" + tier

    async def _ask(self, lookup: Lookup) -> tuple[bytes, str, str, str]:
        """The upstream's answer for exactly the version this node resolved (the one its
        answer will claim: rows of one batch never mix versions). When the upstream no
        longer holds that version of a model this node does not hold either, and the
        client named no version, the upstream's current version answers."""
        assert self._upstream is not None
        info = lookup.info
        try:
            return await self._upstream.lookup(info, info.version, lookup.feeds, lookup.hops)
        except UpstreamRejected as e:
            if e.status != 404 or lookup.mv is not None or lookup.version is not None:
                raise
            return await self._upstream.lookup(info, None, lookup.feeds, lookup.hops)
