"""`TieredCache`: L1 (memory or Redis) over L2 (disk), with TTLs per tier.

A lookup (`l1_get`, then `l2_get`) returns a fresh value with the tier that had it (an
L2 hit is promoted to L1), or a miss that may carry a *stale* value: expired, but by
less than the grace, which the caller serves only when it cannot get a fresh one
(upstream down). Purges by key, prefix and tag apply to both tiers. Per-tier hits,
misses and errors feed the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from edge.cache.disk import DiskL2
from edge.metrics import NodeMetrics


class L1Store(Protocol):
    kind: str
    errors: int

    async def get(self, key: str) -> tuple[bytes, float] | None: ...
    async def set(self, key: str, value: bytes, expires: float,
                  tags: tuple[str, ...]) -> None: ...
    async def delete(self, key: str) -> int: ...
    async def purge_prefix(self, prefix: str) -> int: ...
    async def purge_tag(self, tag: str) -> int: ...
    async def flush(self) -> int: ...
    def stats(self) -> dict: ...
    async def close(self) -> None: ...


@dataclass(slots=True)
class Lookup:
    value: bytes | None  # fresh value, or None on a miss
    tier: str | None  # "l1" or "l2" for a fresh value
    stale: bytes | None = None  # expired less than `grace_s` ago


class TieredCache:
    def __init__(self, l1: L1Store, l2: DiskL2, *, l1_ttl_s: float, l2_ttl_s: float,
                 grace_s: float, metrics: NodeMetrics) -> None:
        self.l1 = l1
        self.l2 = l2
        self.l1_ttl_s = l1_ttl_s
        self.l2_ttl_s = l2_ttl_s
        self.grace_s = grace_s
        m = metrics
        self._l1_hit, self._l1_miss = m.hot(m.tier_hits, "l1"), m.hot(m.tier_misses, "l1")
        self._l2_hit, self._l2_miss = m.hot(m.tier_hits, "l2"), m.hot(m.tier_misses, "l2")
        self._l1_errors_seen = 0
        self._l1_error_counter = m.tier_errors.labels("l1")
        self._l2_counts_seen = (0, 0)  # l2 errors and corrupt entries already counted
        self._l2_error_counter = m.tier_errors.labels("l2")
        self._l2_corrupt_counter = m.corrupt.labels("l2")

    async def l1_fresh(self, key: str) -> bytes | None:
        """A fresh L1 value, counted as a hit; None (counting nothing) otherwise. The hot
        path of repeated requests; on None the caller does a full `get`."""
        found = await self.l1.get(key)
        if found is not None and found[1] > time.time():
            self._l1_hit.inc()
            return found[0]
        return None

    async def l1_get(self, key: str) -> Lookup:
        """L1's fresh value, or a miss (with L1's value if expired within the grace)."""
        found = await self.l1.get(key)
        stale = None
        if found is not None:
            value, expires = found
            now = time.time()
            if expires > now:
                self._l1_hit.inc()
                return Lookup(value, "l1")
            if expires + self.grace_s > now:
                stale = value
        self._l1_miss.inc()
        self._sync_l1_errors()
        return Lookup(None, None, stale)

    async def l2_get(self, key: str) -> Lookup:
        """L2's fresh value (promoted to L1), or a miss (with an expired value within the
        grace)."""
        found = self.l2.get(key)
        self._sync_l2_counts()
        stale = None
        if found is not None:
            value, expires, tags = found
            now = time.time()
            if expires > now:
                self._l2_hit.inc()
                await self.l1.set(key, value, min(expires, now + self.l1_ttl_s), tags)
                return Lookup(value, "l2")
            if expires + self.grace_s > now:
                stale = value
        self._l2_miss.inc()
        return Lookup(None, None, stale)

    async def put(self, key: str, value: bytes, tags: tuple[str, ...]) -> None:
        now = time.time()
        await self.l1.set(key, value, now + self.l1_ttl_s, tags)
        self._sync_l1_errors()
        self.l2.put_later(key, value, now + self.l2_ttl_s, tags)

    async def purge(self, keys: Iterable[str] = (), prefixes: Iterable[str] = (),
                    tags: Iterable[str] = ()) -> dict[str, int]:
        """Apply a purge to both tiers; returns the number of entries removed per tier."""
        await self.l2.drain()  # a queued write must not bring a purged entry back
        removed = {"l1": 0, "l2": 0}
        for key in keys:
            removed["l1"] += await self.l1.delete(key)
            removed["l2"] += self.l2.delete(key)
        for prefix in prefixes:
            removed["l1"] += await self.l1.purge_prefix(prefix)
            removed["l2"] += self.l2.purge_prefix(prefix)
        for tag in tags:
            removed["l1"] += await self.l1.purge_tag(tag)
            removed["l2"] += self.l2.purge_tag(tag)
        return removed

    async def flush(self, tiers: list[str]) -> dict[str, int]:
        await self.l2.drain()
        removed = {}
        if "l1" in tiers:
            removed["l1"] = await self.l1.flush()
        if "l2" in tiers:
            removed["l2"] = self.l2.flush()
        return removed

    def stats(self) -> dict:
        return {"l1": self.l1.stats(), "l2": self.l2.stats()}

    def _sync_l2_counts(self) -> None:
        errors, corrupt = self.l2.errors, self.l2.corrupt
        seen_errors, seen_corrupt = self._l2_counts_seen
        if (errors, corrupt) != self._l2_counts_seen:
            self._l2_error_counter.inc(errors - seen_errors)
            self._l2_corrupt_counter.inc(corrupt - seen_corrupt)
            self._l2_counts_seen = (errors, corrupt)

    def _sync_l1_errors(self) -> None:
        if self.l1.errors != self._l1_errors_seen:
            self._l1_error_counter.inc(self.l1.errors - self._l1_errors_seen)
            self._l1_errors_seen = self.l1.errors
