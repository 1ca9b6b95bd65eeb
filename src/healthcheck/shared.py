"""Health state shared over Redis by checkers at several vantage points.

Layout (all keys under `prefix`, default ``geocdn:health``, written as the hash tag
``{geocdn:health}`` so that on a Redis Cluster they share the slot one transaction needs):

* ``{prefix}:vantages`` - a set of the vantage names ever seen;
* ``{prefix}:vantage:{name}`` - a hash, one field per target (its health URL) whose
  value is the JSON state that vantage point's own probes give it, plus the field
  ``__overrides__`` (the overrides that vantage's file holds). The whole hash is
  rewritten at every heartbeat with a time to live of `ttl` seconds, so the votes of
  a checker that dies vanish by themselves and the quorum counts only live ones.

Overrides drain members for every DNS server, so they are admin writes: a vantage
publishes them signed (HMAC-SHA256 with the admin token over its name, the time and the
entries) and a reader accepts only those whose signature checks with its own token and
that are fresh. A reader without a token accepts no overrides from Redis. Votes rely on
Redis' own authentication (a password or an ACL user in the URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import asdict

from redis.typing import EncodableT, FieldT

from geocdn.redis_url import connect, slot_tag
from geodns.steering.health import MemberHealth, Status
from healthcheck.overrides import Override, OverrideError, parse_override
from healthcheck.quorum import Vote

OVERRIDES_FIELD = "__overrides__"
NO_OVERRIDES = "[]"  # what a vantage without the admin token publishes
OVERRIDES_MAX_AGE_S = 30.0  # a signed set older than this (a replay) is ignored
log = logging.getLogger(__name__)


def encode(health: MemberHealth) -> str:
    doc = asdict(health)
    doc["status"] = health.status.value
    return json.dumps(doc, separators=(",", ":"))


def decode(raw: str) -> MemberHealth:
    doc = json.loads(raw)
    doc["status"] = Status(doc["status"])
    return MemberHealth(**doc)


class SharedState:
    def __init__(self, url: str, prefix: str = "geocdn:health", ttl: float = 2.0,
                 token: str | None = None) -> None:
        self.token = token
        self.rejected_overrides = 0  # override sets dropped: unsigned, forged or stale
        self.prefix = slot_tag(prefix)  # every key in one cluster slot: one transaction
        self.ttl = ttl
        # Short socket timeouts: a Redis that hangs must not stall the fallback.
        self.redis = connect(
            url, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5
        )

    def _key(self, vantage: str) -> str:
        return f"{self.prefix}:vantage:{vantage}"

    async def publish(
        self, vantage: str, states: dict[str, MemberHealth], overrides: list[Override]
    ) -> None:
        fields: dict[FieldT, EncodableT] = {url: encode(h) for url, h in states.items()}
        # always a field, so the hash exists even with no target; unsigned: no overrides
        fields[OVERRIDES_FIELD] = self._sign(vantage, [o.to_dict() for o in overrides]) \
            if self.token else NO_OVERRIDES
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
                    overrides.extend(self._verified(name, raw, now))
                    continue
                try:
                    votes.setdefault(url, []).append(Vote(name, decode(raw)))
                except (ValueError, TypeError, KeyError):
                    continue  # a malformed entry is no vote
        return votes, overrides, live

    async def close(self) -> None:
        await self.redis.aclose()

    def _mac(self, vantage: str, ts: float, entries: str) -> str:
        assert self.token
        message = json.dumps([vantage, ts, entries]).encode()
        return hmac.new(self.token.encode(), message, hashlib.sha256).hexdigest()

    def _sign(self, vantage: str, entries: list[dict[str, object]]) -> str:
        body, ts = json.dumps(entries), time.time()
        return json.dumps({"ts": ts, "entries": body, "mac": self._mac(vantage, ts, body)})

    def _verified(self, vantage: str, raw: str, now: float) -> list[Override]:
        """The overrides `vantage` published, if signed with our token and fresh."""
        if raw == NO_OVERRIDES:
            return []
        try:
            doc = json.loads(raw)
            ts, body, mac = float(doc["ts"]), str(doc["entries"]), str(doc["mac"])
        except (ValueError, TypeError, KeyError):
            ts, body, mac = 0.0, "", ""
        if not (self.token and hmac.compare_digest(mac, self._mac(vantage, ts, body))
                and abs(now - ts) <= OVERRIDES_MAX_AGE_S):
            self.rejected_overrides += 1
            if self.rejected_overrides == 1:
                log.warning("ignoring overrides from vantage %r in Redis: %s", vantage,
                            "no admin token here to check them" if not self.token
                            else "not signed with this admin token, or stale")
            return []
        return _overrides(body, now)


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
