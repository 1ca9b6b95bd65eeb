"""Workers answer from the parent's verdicts (`geodns serve --workers N`).

Only the parent (role "supervisor") probes. Whenever its state changes (its health
`generation` moves) it writes a snapshot - per pool: settled, `min_ttl` / `max_ttl`,
and every member's effective `MemberHealth`, overrides and vantage quorum applied -
to a file of the run's private directory (`publish`, written to a temporary name and
renamed, so a reader never sees half a file). Each worker reads the file when it
changes (`Follower`, every `POLL` seconds) and answers from it: every target gets one
probe per interval, and every process steers by the same verdicts, a poll behind the
parent at most. Until the first snapshot arrives a worker's pools are not settled
(SERVFAIL, resolvers retry), as the parent's are until its first verdicts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from geodns.steering.health import MemberHealth
from healthcheck.service import NOT_PROBED, HealthService, pool_ttl
from healthcheck.shared import decode, encode

log = logging.getLogger("healthcheck")
POLL = 0.05  # seconds between two looks at the snapshot file (parent and workers)

PoolKey = tuple[str, str]  # (zone, pool)


def snapshot(service: HealthService) -> dict[str, Any]:
    return {"generation": service.generation, "pools": [
        {"zone": zone, "pool": pool, "settled": b.settled.is_set(),
         "min_ttl": b.settings.min_ttl, "max_ttl": b.settings.max_ttl,
         "members": {m: encode(service.state(zone, pool, m)) for m in b.members}}
        for (zone, pool), b in service.bindings().items()
    ]}


async def publish(service: HealthService, path: Path) -> None:
    """Write the service's snapshot to `path` whenever its generation moves."""
    written = None
    tmp = path.with_name(path.name + ".tmp")
    while True:
        if service.generation != written:
            written = service.generation
            tmp.write_text(json.dumps(snapshot(service), separators=(",", ":")))
            os.replace(tmp, path)
        await asyncio.sleep(POLL)


class Follower:
    """The parent's verdicts as this process's `HealthView`s (one per zone)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = -1  # none read yet
        self._members: dict[tuple[str, str, str], MemberHealth] = {}
        self._pools: dict[PoolKey, dict[str, Any]] = {}
        self._seen: tuple[int, int] | None = None
        self._views: dict[str | None, FollowedView] = {}

    def view_for(self, zone: str | None) -> FollowedView:
        if zone not in self._views:
            self._views[zone] = FollowedView(self, zone)
        return self._views[zone]

    def read(self) -> None:
        """Take the snapshot file if it changed since the last look."""
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) == self._seen:
                return
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # not written yet (or, never expected, unreadable): keep the last one
        self._seen = (st.st_mtime_ns, st.st_size)
        members: dict[tuple[str, str, str], MemberHealth] = {}
        pools: dict[PoolKey, dict[str, Any]] = {}
        for p in doc["pools"]:
            pools[(p["zone"], p["pool"])] = p
            for name, raw in p["members"].items():
                members[(p["zone"], p["pool"], name)] = decode(raw)
        self._members, self._pools, self.generation = members, pools, doc["generation"]

    async def run(self) -> None:
        while True:
            self.read()
            await asyncio.sleep(POLL)

    def pool(self, zone: str | None, pool: str) -> dict[str, Any] | None:
        if zone is not None:
            return self._pools.get((zone, pool))
        return next((p for (_, name), p in self._pools.items() if name == pool), None)

    def member(self, zone: str | None, pool: str, member: str) -> MemberHealth:
        p = self.pool(zone, pool)
        if p is None:
            return NOT_PROBED
        return self._members.get((p["zone"], pool, member), NOT_PROBED)


class FollowedView:
    """A zone's `HealthView` (with `settled` and `ttl_for`) from the parent's snapshot."""

    def __init__(self, follower: Follower, zone: str | None) -> None:
        self._follower = follower
        self.zone = zone

    @property
    def generation(self) -> int:
        return self._follower.generation

    def get(self, pool: str, member: str) -> MemberHealth:
        return self._follower.member(self.zone, pool, member)

    def settled(self, pool: str) -> bool:
        if self._follower.generation < 0:
            return False  # no snapshot yet: nothing has settled
        p = self._follower.pool(self.zone, pool)
        return p is None or p["settled"]

    def ttl_for(self, pool: str, ttl: int, unsteady: bool) -> int:
        p = self._follower.pool(self.zone, pool)
        if p is None:
            return ttl
        return pool_ttl(p["min_ttl"], p["max_ttl"], ttl, unsteady)
