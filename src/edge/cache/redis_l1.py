"""L1 in Redis, shared by the edge workers of one site; bounded by Redis' own maxmemory.

A failing Redis never fails a request: any error marks the tier down for `retry_after_s`
(requests skip it meanwhile, counted in `errors`), then the next request tries again.
Values are stored as an 8-byte little-endian expiry time followed by the value bytes;
Redis itself drops the key `retain_s` after that expiry (the stale-serving grace).
Tags are Redis sets of keys, purged with the keys they name.
"""

from __future__ import annotations

import logging
import math
import struct
import time

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edge.cache import TierUnavailable
from geocdn.redis_url import REDIS_ERRORS, connect

log = logging.getLogger(__name__)
_EXPIRES = struct.Struct("<d")
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisL1:
    kind = "redis"

    def __init__(self, url: str, prefix: str = "edge:", retain_s: float = 600.0,
                 timeout_s: float = 0.25, retry_after_s: float = 1.0) -> None:
        self._redis = connect(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), decode_responses=False)
        self._prefix = prefix
        self._retain_s = retain_s
        self._retry_after_s = retry_after_s
        self._down_until = 0.0
        self.errors = 0

    @property
    def ok(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, e: Exception) -> None:
        self.errors += 1
        if self.ok:
            log.warning("redis L1 %s failed (%s); skipping L1 for %.1fs", op, e,
                        self._retry_after_s)
        self._down_until = time.monotonic() + self._retry_after_s

    async def get(self, key: str) -> tuple[bytes, float] | None:
        if not self.ok:
            self.errors += 1
            return None
        try:
            raw = await self._redis.get(self._prefix + key)
        except REDIS_ERRORS as e:
            self._failed("get", e)
            return None
        if not isinstance(raw, bytes) or len(raw) < _EXPIRES.size:
            return None  # the client does not decode responses: values are bytes
        return raw[_EXPIRES.size:], _EXPIRES.unpack_from(raw)[0]

    async def set(self, key: str, value: bytes, expires: float, tags: tuple[str, ...]) -> None:
        if not self.ok:
            self.errors += 1
            return
        ttl = max(1, math.ceil(expires - time.time() + self._retain_s))
        full = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(full, _EXPIRES.pack(expires) + value, ex=ttl)
                for tag in tags:
                    pipe.sadd(self._tag_key(tag), full)
                    pipe.expire(self._tag_key(tag), ttl, gt=True)
                    pipe.expire(self._tag_key(tag), ttl, nx=True)
                await pipe.execute()
        except REDIS_ERRORS as e:
            self._failed("set", e)

    async def delete(self, key: str) -> int:
        return await self._delete([self._prefix + key])

    async def purge_prefix(self, prefix: str) -> int:
        return await self._delete_matching(self._prefix + prefix.translate(_GLOB_SPECIAL) + "*")

    async def purge_tag(self, tag: str) -> int:
        try:
            keys = await self._redis.smembers(self._tag_key(tag))
        except REDIS_ERRORS as e:
            self._failed("purge", e)
            raise TierUnavailable(f"redis L1 unreachable: {e}") from None
        n = await self._delete(list(keys))
        await self._delete([self._tag_key(tag)])
        return n

    async def flush(self) -> int:
        return await self._delete_matching(self._prefix.translate(_GLOB_SPECIAL) + "*")

    def stats(self) -> dict:
        return {"kind": self.kind, "ok": self.ok, "errors": self.errors}

    async def close(self) -> None:
        await self._redis.aclose()

    def _tag_key(self, tag: str) -> str:
        return f"{self._prefix}tag:{tag}"

    async def _delete(self, keys: list) -> int:
        if not keys:
            return 0
        try:
            return int(await self._redis.delete(*keys))
        except REDIS_ERRORS as e:
            self._failed("delete", e)
            raise TierUnavailable(f"redis L1 unreachable: {e}") from None

    async def _delete_matching(self, pattern: str) -> int:
        n, batch = 0, []
        try:
            async for key in self._redis.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    n += await self._delete(batch)
                    batch = []
        except REDIS_ERRORS as e:
            self._failed("scan", e)
            raise TierUnavailable(f"redis L1 unreachable: {e}") from None
        return n + await self._delete(batch)
