"""Samples shared through Redis, so that every DNS server steers alike.

Layout (prefix `{latency:v1}:`, one cluster hash slot, so that a beacon's writes go to
one node in one pipeline on a Redis Cluster too): one list per (client network, edge, source) at
`s:{network}|{edge}|{source}` holding "unixtime:ms" items, the newest last, trimmed to
`max_samples` and expiring `expiry_s` after its last write; and the index `index`, a
sorted set of "{network}|{edge}|{source}" scored by the time of the last write, trimmed
to the newest entries. Edges write (`SampleWriter`); each DNS server follows the index
(`Follower`): every `sync_interval_s` it reads the lists written since its last read
into its own `FigureTable`. When Redis cannot be reached it keeps steering by the
figures it has until they expire, then by distance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import cast

from geocdn.redis_url import REDIS_ERRORS, RedisClient, slot_tag

from .settings import LatencySettings
from .table import FigureTable, Sample

log = logging.getLogger("latency")
PREFIX = slot_tag("latency:v1") + ":"
INDEX = PREFIX + "index"
EDGES_PER_NETWORK = 8  # index entries per network budgeted (edges x sources)
READ_BATCH = 2000  # index entries read per sync round


def _parse(items: Iterable[bytes]) -> list[Sample]:
    out = []
    for item in items:
        t, _, ms = item.decode().partition(":")
        out.append((float(t), float(ms)))
    return out


class SampleWriter:
    """The edge's side: append validated samples."""

    def __init__(self, redis: RedisClient, settings: LatencySettings) -> None:
        self.redis = redis
        self.settings = settings
        self._writes = 0

    async def add(self, network: str, samples: Iterable[tuple[str, str, float]],
                  t: float | None = None) -> None:
        """`samples`: (edge, source, ms). Raises one of `REDIS_ERRORS` when Redis is
        unreachable."""
        s = self.settings
        now = time.time() if t is None else t
        pipe = self.redis.pipeline(transaction=False)
        for edge, source, ms in samples:
            member = f"{network}|{edge}|{source}"
            key = PREFIX + "s:" + member
            pipe.rpush(key, f"{now:.3f}:{ms:.3f}")
            pipe.ltrim(key, -s.max_samples, -1)
            pipe.expire(key, int(s.expiry_s) + 60)
            pipe.zadd(INDEX, {member: now})
        self._writes += 1
        if self._writes % 100 == 0:
            pipe.zremrangebyrank(INDEX, 0, -(s.max_networks * EDGES_PER_NETWORK) - 1)
        await pipe.execute()


class Follower:
    """A DNS server's side: keep `table` up to date from Redis."""

    FULL_REFRESH_S = 10.0  # decay and expiry are applied to every network this often

    def __init__(self, redis: RedisClient, table: FigureTable) -> None:
        self.redis = redis
        self.table = table
        self.since: float | None = None
        self.connected = False
        self._warned = False
        self._last_full = 0.0

    async def sync_once(self) -> int:
        """Read what was written since the last round; returns the entries read."""
        s = self.table.settings
        since = self.since if self.since is not None else time.time() - s.expiry_s
        raw = cast(list[tuple[bytes, float]], await self.redis.zrangebyscore(
            INDEX, since, "+inf", start=0, num=READ_BATCH, withscores=True))
        entries = [(member.decode(), score) for member, score in raw]
        if entries:
            pipe = self.redis.pipeline(transaction=False)
            for member, _ in entries:
                pipe.lrange(PREFIX + "s:" + member, 0, -1)
            lists = await pipe.execute()
            for (member, _), items in zip(entries, lists, strict=True):
                network, edge, source = member.split("|")
                self.table.replace(network, edge, source, _parse(items))
            # Entries written in the same instant as the last one read are read again.
            self.since = max(score for _, score in entries)
        elif self.since is None:
            self.since = since
        return len(entries)

    def refresh(self) -> None:
        now = time.monotonic()
        full = now - self._last_full >= self.FULL_REFRESH_S
        if full:
            self._last_full = now
        self.table.refresh(everything=full)

    async def run(self) -> None:
        while True:
            try:
                while await self.sync_once() >= READ_BATCH:
                    pass
                if not self.connected:
                    log.info("latency figures: following Redis")
                self.connected, self._warned = True, False
            except REDIS_ERRORS as e:
                if not self._warned:
                    log.warning("latency figures: Redis unreachable (%s); steering by the "
                                "figures held until they expire", e)
                self.connected, self._warned = False, True
            self.refresh()
            await asyncio.sleep(self.table.settings.sync_interval_s)
