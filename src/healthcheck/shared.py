"""Health state shared over Redis by checkers at several vantage points.

Layout (all keys under `prefix`, default ``geocdn:health``):

* ``{prefix}:vantages`` - a set of the vantage names ever seen;
* ``{prefix}:vantage:{name}`` - a hash, one field per target (its health URL) whose
  value is the JSON state that vantage point's own probes give it, plus the field
  ``__overrides__`` (the overrides that vantage's file holds). The whole hash is
  rewritten at every heartbeat with a time to live of `ttl` seconds, so the votes of
  a checker that dies vanish by themselves and the quorum counts only live ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from geodns.steering.health import MemberHealth, Status
from healthcheck.overrides import Override, OverrideError, parse_override
from healthcheck.quorum import Vote

OVERRIDES_FIELD = "__overrides__"


def encode(health: MemberHealth) -> str:
    doc = asdict(health)
    doc["status"] = health.status.value
    return json.dumps(doc, separators=(",", ":"))


def decode(raw: str) -> MemberHealth:
    doc = json.loads(raw)
    doc["status"] = Status(doc["status"])
    return MemberHealth(**doc)


class SharedState:
    def __init__(self, url: str, prefix: str = "geocdn:health", ttl: float = 2.0) -> None:
        self.prefix = prefix
        self.ttl = ttl
        # Short socket timeouts: a Redis that hangs must not stall the fallback.
        self.redis = aioredis.from_url(
            url, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5
        )

    def _key(self, vantage: str) -> str:
        return f"{self.prefix}:vantage:{vantage}"

    async def publish(
        self, vantage: str, states: dict[str, MemberHealth], overrides: list[Override]
    ) -> None:
        fields: dict[FieldT, EncodableT] = {url: encode(h) for url, h in states.items()}
        fields[OVERRIDES_FIELD] = json.dumps([o.to_dict() for o in overrides])
        key = self._key(vantage)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, int(self.ttl * 1000))
            pipe.sadd(f"{self.prefix}:vantages", vantage)
            await pipe.execute()

    async def withdraw(self, vantage: str) -> None:
        """Delete `vantage`'s votes now rather than when they expire."""
        await self.redis.delete(self._key(vantage))

    async def read(self) -> tuple[dict[str, list[Vote]], list[Override], list[str]]:
        """Votes per target URL, the overrides published, and the live vantage names."""
        # decode_responses=True: Redis answers str (the client's types also allow bytes)
        names = sorted(_text(n) for n in await self.redis.smembers(f"{self.prefix}:vantages"))
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._key(name))
            hashes = await pipe.execute()
        votes: dict[str, list[Vote]] = {}
        overrides: list[Override] = []
        live: list[str] = []
        now = time.time()
        for name, fields in zip(names, hashes, strict=True):
            if not fields:
                continue  # expired: that checker stopped publishing
            live.append(name)
            for url, raw in fields.items():
                if url == OVERRIDES_FIELD:
                    overrides.extend(_overrides(raw, now))
                    continue
                try:
                    votes.setdefault(url, []).append(Vote(name, decode(raw)))
                except (ValueError, TypeError, KeyError):
                    continue  # a malformed entry is no vote
        return votes, overrides, live

    async def close(self) -> None:
        await self.redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _overrides(raw: str, now: float) -> list[Override]:
    out: list[Override] = []
    try:
        entries = json.loads(raw)
    except ValueError:
        return out
    for entry in entries if isinstance(entries, list) else []:
        try:
            out.append(parse_override(entry, now))
        except OverrideError:
            continue
    return out
