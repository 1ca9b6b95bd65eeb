"""Origin-side operations: change the store, then announce the change on the stream.

The store is the truth; the stream only tells edges to look. If announcing fails
(Redis down), the change stands and the answer says `announced: false`: edges pick it
up when they resync or poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.distribution.blobs import atomic_write
from edge.distribution.errors import DistributionError
from edge.distribution.events import Event, EventStream
from edge.distribution.manifest import Manifest
from edge.distribution.names import check_component
from edge.distribution.store import ModelStore
from geocdn.redis_url import REDIS_ERRORS

log = logging.getLogger(__name__)

ROLLOUT_PREFIX = "cdn:rollout:"
REPORT_TTL = 30.0


class StreamUnavailable(DistributionError):
    """A purge needs the invalidation stream and there is none."""


class Distribution:
    def __init__(self, store: ModelStore, stream: EventStream | None = None) -> None:
        self.store = store
        self.stream = stream
        self._reports: dict[str, tuple[float, dict[str, Any]]] = {}
        self._seq_file = store.root / "stream.seq"  # the last sequence number announced

    async def _publish(self, event: Event) -> Event:
        """Announce on the stream, numbering above the last announced number (kept in the
        store, so that a Redis restart does not restart the numbering)."""
        assert self.stream is not None
        try:
            floor = int(self._seq_file.read_text())
        except (FileNotFoundError, ValueError):
            floor = 0
        sent = await self.stream.publish(event, floor)
        if sent.seq > floor:
            await asyncio.to_thread(atomic_write, self._seq_file, str(sent.seq).encode())
        return sent

    async def _announce(self, event: Event) -> dict[str, Any]:
        if self.stream is None:
            return {"announced": False}
        try:
            sent = await self._publish(event)
        except REDIS_ERRORS as exc:
            log.warning("could not announce %s: %s", event.describe(), exc)
            return {"announced": False, "warning": f"not announced: {exc}"}
        return {"announced": True, "event": {"id": sent.id, "seq": sent.seq}}

    async def _model_event(self, kind: str, name: str, version: str) -> dict[str, Any]:
        digest = self.store.manifest(name, version).digest
        return await self._announce(Event(kind, name, version, digest))

    async def summary(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.summary)

    async def publish(self, path: Path, name: str, version: str, *, int8: bool = False,
                      activate: bool = False, stage: bool = False,
                      config: dict[str, Any] | None = None) -> dict[str, Any]:
        manifest, created = await asyncio.to_thread(
            self.store.publish, path, name, version, int8=int8, config=config)
        out: dict[str, Any] = {"created": created, "manifest": manifest.to_dict()}
        if activate:
            out["activate"] = await self.activate(name, version)
        elif stage:
            out["stage"] = await self.stage(name, version)
        return out

    async def activate(self, name: str, version: str) -> dict[str, Any]:
        ptr = await asyncio.to_thread(self.store.activate, name, version)
        return {"pointer": asdict(ptr), **await self._model_event("activate", name, version)}

    async def stage(self, name: str, version: str) -> dict[str, Any]:
        ptr = await asyncio.to_thread(self.store.stage, name, version)
        return {"pointer": asdict(ptr), **await self._model_event("stage", name, version)}

    async def rollback(self, name: str) -> dict[str, Any]:
        ptr = await asyncio.to_thread(self.store.rollback, name)
        assert ptr.current is not None
        return {"pointer": asdict(ptr),
                **await self._model_event("rollback", name, ptr.current)}

    async def purge(self, kind: str, value: str) -> dict[str, Any]:
        event = Event.purge(kind, value)
        if self.stream is None:
            raise StreamUnavailable("purges travel on the Redis stream; start the origin "
                                    "with a Redis URL")
        try:
            sent = await self._publish(event)
        except REDIS_ERRORS as exc:
            raise StreamUnavailable(f"invalidation stream unreachable: {exc}") from None
        return {"announced": True, "event": {"id": sent.id, "seq": sent.seq}}

    # ----- rollout state of the edges
    def record_report(self, edge_id: str, state: dict[str, Any]) -> None:
        """A state report POSTed by an edge that has no Redis."""
        self._reports[check_component(edge_id, "edge id")] = (time.monotonic(), state)

    async def rollout(self) -> dict[str, Any]:
        now = time.monotonic()
        edges = {e: s for e, (t, s) in self._reports.items() if now - t < REPORT_TTL}
        if self.stream is not None:
            redis = self.stream.redis
            try:
                keys = [k async for k in redis.scan_iter(match=ROLLOUT_PREFIX + "*")]
                for key, raw in zip(keys, await redis.mget(keys) if keys else [], strict=True):
                    if raw:
                        name = key.decode() if isinstance(key, bytes) else key
                        edges[name[len(ROLLOUT_PREFIX):]] = json.loads(raw)
                head = await self.stream.head()
            except REDIS_ERRORS as exc:
                return {"edges": edges, "warning": f"Redis unreachable: {exc}"}
            return {"edges": edges, "stream": {"head_id": head.id, "head_seq": head.seq}}
        return {"edges": edges}


class LocalOrigin:
    """The read side of OriginClient served from this process's store: the origin's own
    rollout agent uses it instead of calling itself over HTTP."""

    def __init__(self, dist: Distribution) -> None:
        self.dist = dist

    async def summary(self) -> dict[str, Any]:
        return await self.dist.summary()

    async def manifest(self, name: str, version: str) -> Manifest:
        return self.dist.store.manifest(name, version)

    async def blob(self, digest: str, max_size: int) -> bytes:
        return await asyncio.to_thread(self.dist.store.blobs.read, digest)

    async def report(self, edge_id: str, state: dict[str, Any]) -> None:
        self.dist.record_report(edge_id, state)

    async def close(self) -> None:
        return None
