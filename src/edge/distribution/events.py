"""The announcement and invalidation stream, on Redis Streams.

Every event carries a sequence number given atomically by the server (a Lua script
increments a counter and appends the entry in one step). An edge remembers the id and
sequence number of the last entry it applied; when it reads an entry whose sequence
number is not the next one, entries were lost (trimmed by MAXLEN while the edge was
away, or the stream was reset) and the edge must fully resync from the origin's
manifests instead of trusting the stream.

Stream entries are flat string maps: `seq`, `kind`, `ts` (publish time, epoch seconds)
and per kind `model`, `version`, `digest` (activate, stage, rollback) or `key` / `prefix`
/ `tag` (purge).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from edge.distribution.errors import DistributionError
from edge.distribution.names import check_digest, check_name, check_version
from geocdn.redis_url import RedisClient, connect

log = logging.getLogger(__name__)
STREAM_KEY = "{cdn:events}"  # a hash tag: the stream and its :seq share a cluster slot
# How long a publish waits for a replica to hold the entry, where the primary has any.
REPLICA_WAIT_MS = 1000
READ_GRACE_S = 5.0  # how much longer than its BLOCK time a stream read may take
MAXLEN = 10_000  # approximate cap: Redis trims whole nodes, so the stream holds >= this
MODEL_KINDS = ("activate", "stage", "rollback")
PURGE_KINDS = ("key", "prefix", "tag")

# ARGV: maxlen, the publisher's last sequence number (the floor), then the fields. The
# floor keeps numbering continuous when Redis lost the counter (a restart without
# persistence): a restart alone then shows no gap to the edges.
_XADD_SEQ = """
local seq = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[2])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[2], seq)
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', seq, unpack(ARGV, 3))
return {id, seq}
"""


def connect_stream(url: str) -> RedisClient:
    """A client for the stream's Redis that retries a command on a new connection when
    the old one broke (a restarted Redis closes every connection: the first command
    after it would fail otherwise)."""
    return connect(url, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                   retry_on_error=[RedisConnectionError, RedisTimeoutError])


@dataclass(frozen=True)
class Event:
    kind: str  # activate | stage | rollback | purge
    model: str = ""
    version: str = ""
    digest: str = ""
    purge_kind: str = ""  # key | prefix | tag
    purge_value: str = ""
    ts: float = 0.0
    seq: int = 0
    id: str = ""

    def __post_init__(self) -> None:
        if self.kind in MODEL_KINDS:
            check_name(self.model)
            check_version(self.version)
            check_digest(self.digest)
        elif self.kind == "purge":
            if self.purge_kind not in PURGE_KINDS:
                raise DistributionError(f"purge needs one of {PURGE_KINDS}")
            if not isinstance(self.purge_value, str) or len(self.purge_value) > 1024:
                raise DistributionError("purge value must be a string of at most 1024 chars")
            if self.purge_kind != "prefix" and not self.purge_value:
                raise DistributionError(f"purge by {self.purge_kind} needs a value")
        else:
            raise DistributionError(f"unknown event kind {self.kind!r}")

    @classmethod
    def purge(cls, kind: str, value: str) -> Event:
        return cls("purge", purge_kind=kind, purge_value=value)

    def fields(self) -> dict[str, str]:
        out = {"kind": self.kind, "ts": repr(self.ts or time.time())}
        if self.kind == "purge":
            out[self.purge_kind] = self.purge_value
        else:
            out.update(model=self.model, version=self.version, digest=self.digest)
        return out

    @classmethod
    def from_entry(cls, entry_id: str, f: dict[str, str]) -> Event:
        ts, seq = float(f.get("ts", 0)), int(f.get("seq", 0))
        if f.get("kind") == "purge":
            kind = next((k for k in PURGE_KINDS if k in f), "")
            return cls("purge", purge_kind=kind, purge_value=f.get(kind, ""), ts=ts, seq=seq,
                       id=entry_id)
        return cls(f.get("kind", ""), f.get("model", ""), f.get("version", ""),
                   f.get("digest", ""), ts=ts, seq=seq, id=entry_id)

    def describe(self) -> str:
        if self.kind == "purge":
            return f"purge {self.purge_kind}={self.purge_value!r}"
        return f"{self.kind} {self.model} {self.version}"


@dataclass(frozen=True)
class Position:
    """Where a reader stands: the last entry applied (`0-0`/0 = nothing yet)."""

    id: str = "0-0"
    seq: int = 0


class EventStream:
    """Append events (origin side) and read them in order (edge side)."""

    def __init__(self, redis: RedisClient, key: str = STREAM_KEY, maxlen: int = MAXLEN) -> None:
        self.redis = redis
        self.key = key
        self.maxlen = maxlen
        self._script = redis.register_script(_XADD_SEQ)

    async def publish(self, event: Event, floor: int = 0) -> Event:
        """Append `event`; its sequence number is the next one, and above `floor`."""
        flat: list[str] = []
        fields = event.fields()
        for k, v in fields.items():
            flat += [k, v]
        keys = [self.key, self.key + ":seq"]
        args: list[str | int] = [self.maxlen, floor, *flat]
        if isinstance(self.redis, RedisCluster) or not await self._has_replicas():
            entry_id, seq = await self._script(keys=keys, args=args)
        else:  # on the connection that wrote: WAIT for a replica, so a failover keeps it
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._script(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
                (entry_id, seq), _acked = await pipe.execute()
        if isinstance(entry_id, bytes):
            entry_id = entry_id.decode()
        return Event.from_entry(entry_id, {**fields, "seq": str(seq)})

    async def _has_replicas(self) -> bool:
        info = await self.redis.info("replication")
        return int(info.get("connected_slaves", 0)) > 0

    async def head(self) -> Position:
        """The newest entry's position, or the origin position for an empty stream."""
        entries = await self.redis.xrevrange(self.key, count=1)
        if not entries:
            return Position()
        entry_id, f = entries[0]
        fields = f or {}
        seq = fields.get(b"seq") or fields.get("seq") or 0
        return Position(_s(entry_id or "0-0"), int(_s(seq)))

    async def read(self, after: str, count: int = 100, block_ms: int = 1000) -> list[Event]:
        """Entries after `after`, waiting up to `block_ms` for one. A blocked read that the
        server never ends (a connection to a node lost in a failover) is cut off on our
        side after `READ_GRACE_S` more, as a Redis timeout, so the caller reconnects. An
        entry that is not a valid event (written by something else, or a newer kind) is
        left out and logged: the hole it leaves in the sequence makes the reader resync
        from the origin, never stall on it."""
        try:
            async with asyncio.timeout(block_ms / 1000 + READ_GRACE_S):
                resp = await self._xread(after, count, block_ms)
        except TimeoutError:
            raise RedisTimeoutError(f"XREAD on {self.key} got no answer") from None
        out = []
        for _stream, entries in resp or []:
            for entry_id, f in entries:
                try:
                    out.append(Event.from_entry(_s(entry_id),
                                                {_s(k): _s(v) for k, v in f.items()}))
                except (DistributionError, ValueError) as exc:
                    log.warning("stream entry %s is no valid event, left out: %s",
                                _s(entry_id), exc)
        return out

    async def _xread(self, after: str, count: int, block_ms: int) -> Any:
        if isinstance(self.redis, RedisCluster):
            # redis-py finds XREAD's key by asking one fixed node (COMMAND GETKEYS), which
            # may be the primary that just failed; name the node that holds the stream.
            await self.redis.initialize()  # the slot map: at first use, or after an error
            node = self.redis.get_node_from_key(self.key)
            return await self.redis.execute_command(
                "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", self.key, after,
                target_nodes=node)
        return await self.redis.xread({self.key: after}, count=count, block=block_ms)


def _s(v: bytes | str | int) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
