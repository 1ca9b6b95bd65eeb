"""The edge-side rollout agent: follows the origin and keeps this node's models and
caches in line with it.

With Redis it consumes the invalidation stream from the last entry it applied (its
position is saved in `state_dir/stream.json` after every entry), so an edge that was
away catches up on every activation and purge in order. When the stream shows a gap
(entries trimmed while the edge was away, or a reset stream), or on first start, it
resyncs: current versions from the origin's manifests, and a full cache flush
because the purges it missed are unknown. Without Redis it polls the origin.

A version is fetched (delta when possible), verified, loaded and warmed by `stage`,
then switched in by `activate`. Any failure leaves the serving version alone and is
reported: log, metric, and the model's `error` in the state. The node is *ready*
once the agent has applied everything the stream held (or, polling, after the first
successful poll).

The node is reached through two small interfaces (`ModelPort`, `CachePort`), so the
agent does not depend on how the node stores models or caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.cache import TierUnavailable
from edge.distribution.blobs import BlobStore, atomic_write
from edge.distribution.client import OriginClient
from edge.distribution.errors import NotFound
from edge.distribution.events import Event, EventStream, Position
from edge.distribution.fetcher import FETCH_ERRORS, Fetcher
from edge.distribution.metrics import AgentMetrics
from edge.distribution.oci import Registry, RegistryBlobs
from edge.distribution.placement import Demand, PlacementPolicy
from edge.distribution.service import REPORT_TTL, ROLLOUT_PREFIX, LocalOrigin
from edge.errors import DigestMismatch
from geocdn.redis_url import REDIS_ERRORS

log = logging.getLogger(__name__)


class ModelPort(Protocol):
    """What the agent needs from the node's model registry."""

    def loaded(self) -> dict[str, dict[str, str]]:
        """name → {version: "sha256:…"} for every loaded version (active, previous, staged)."""

    def active(self, name: str) -> str | None: ...

    async def stage(self, name: str, version: str, path: Path, digest: str,
                    config: dict[str, Any] | None = None) -> None:
        """Load, check against `digest`, warm; do not serve yet. `config` is the
        version's config.json, when it was published with one."""

    async def activate(self, name: str, version: str) -> None: ...

    async def unload(self, name: str) -> None: ...


class CachePort(Protocol):
    async def purge(self, kind: str, value: str) -> int:
        """Drop entries by `key`, `prefix` or `tag` on every tier; kind `all` empties them."""


@dataclass
class AgentConfig:
    edge_id: str
    state_dir: Path
    placement: PlacementPolicy = field(default_factory=PlacementPolicy)
    prefer_int8: bool = False
    poll_interval_s: float = 5.0
    report_interval_s: float = 2.0
    # Every this often, an edge following the stream compares what it serves with the
    # origin's current versions; two audits in a row that find it behind make it report
    # the problem (not `ok` in /health) and catch up from the origin.
    audit_interval_s: float = 5.0
    retry_after_s: float = 30.0  # wait before retrying a version that failed
    attempts: int = 3  # tries per stream event before reporting it failed
    block_ms: int = 1000
    registry: Registry | None = None  # the region's OCI registry, tried first for files


@dataclass
class ModelState:
    desired: str | None = None
    staged: str | None = None
    error: str | None = None
    failed_version: str | None = None
    failed_at: float = 0.0
    lazy_at: float = -1e9  # last lazy-load attempt (at most one per retry_after_s)


class RolloutAgent:
    def __init__(self, config: AgentConfig, models: ModelPort, cache: CachePort,
                 origin: OriginClient | LocalOrigin, stream: EventStream | None = None,
                 metrics: AgentMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or AgentMetrics()
        self.models = models
        self.cache = cache
        self.origin = origin
        self.stream = stream
        self.demand = Demand(config.placement)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.fetcher = Fetcher(origin, BlobStore(config.state_dir / "blobs"), config.edge_id,
                               self.metrics,
                               RegistryBlobs(config.registry) if config.registry else None)
        self._position_file = config.state_dir / "stream.json"
        self.position: Position | None = self._load_position()
        self.head_seq = 0
        self.synced = False
        self.connected = False
        self.attempted = False  # tried to reach the stream or origin at least once
        self.resyncs = 0
        self.last_error: str | None = None
        self.state: dict[str, ModelState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: set[str] = set()  # digests being fetched and staged right now
        self._lazy: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._last_poll = 0.0
        self._stopping = False
        self._no_api_logged = False
        self.on_applied: Callable[[Event], None] | None = None  # e.g. to time propagation
        self.behind: list[str] = []  # models whose current version this edge does not serve
        self._suspects: set[str] = set()  # found behind by the last audit
        self._audit_seq = -1  # stream position at the last audit
        self._last_audit = 0.0

    # ----- life cycle
    async def start(self) -> None:
        for name in self.models.loaded():
            self.demand.touch(name)
        main = self._run_stream() if self.stream else self._run_poll()
        self._tasks = [asyncio.create_task(main), asyncio.create_task(self._maintain())]

    async def stop(self) -> None:
        # The flag ends the loops even if a library swallows the cancellation (a redis
        # timeout racing with it surfaces as TimeoutError, which the loops retry).
        self._stopping = True
        for t in [*self._tasks, *self._lazy.values()]:
            t.cancel()
        for t in [*self._tasks, *self._lazy.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks, self._lazy = [], {}

    @property
    def ready(self) -> bool:
        """Caught up with the stream (or polled once). While the stream or the origin
        cannot be reached, catching up is impossible: the node then serves what it has
        (ready, with `connected: false` in its state) rather than leave the network."""
        return self.synced or (self.attempted and not self.connected)

    @property
    def problem(self) -> str | None:
        """Why this node may serve outdated versions or purged entries, or None: the
        stream cannot be read, or the edge is behind the origin."""
        if self.stream is not None and self.attempted and not self.connected:
            return f"invalidation stream unreachable ({self.last_error})"
        if self.behind:
            return "behind the origin for " + ", ".join(self.behind)
        return None

    # ----- hooks for the node
    def record_request(self, model: str) -> None:
        """Count demand; a request for a model not held here starts a lazy load (the
        node forwards that request upstream meanwhile)."""
        self.demand.record(model)
        if self.models.active(model) is None:
            self._start_lazy(model)

    def _start_lazy(self, model: str) -> None:
        st = self.state.setdefault(model, ModelState())
        task = self._lazy.get(model)
        now = time.monotonic()
        if (task is None or task.done()) and now - st.lazy_at >= self.config.retry_after_s:
            st.lazy_at = now
            self._lazy[model] = asyncio.create_task(self._load_current(model))

    async def _load_current(self, model: str) -> None:
        st = self.state.setdefault(model, ModelState())
        try:
            version = st.desired
            if version is None:  # a restarted node: what the origin serves now
                summary = await self._summary()
                version = st.desired = (summary.get(model) or {}).get("current")
            if version is None:
                return  # the origin has no such model: the node's upstream answers
            if self._recently_failed(model, version):
                return
            await self.ensure(model, version, activate=True)
        except FETCH_ERRORS as exc:
            self._failed(model, st.desired or "?", exc)

    # ----- applying changes
    def _lock(self, model: str) -> asyncio.Lock:
        return self._locks.setdefault(model, asyncio.Lock())

    async def ensure(self, model: str, version: str, *, activate: bool,
                     digest: str | None = None) -> None:
        """Make `version` of `model` loaded (and active if asked). Raises on failure; the
        serving version is untouched then."""
        st = self.state.setdefault(model, ModelState())
        async with self._lock(model):
            if activate and self.models.active(model) == version:
                st.error = None
                return
            if version not in self.models.loaded().get(model, {}):
                manifest = await self.origin.manifest(model, version)
                if digest and manifest.digest != digest:
                    raise DigestMismatch(f"{model} {version}: announced {digest}, "
                                         f"manifest says {manifest.digest}")
                role = "int8" if self.config.prefer_int8 and "int8" in manifest.files \
                    else "model"
                entry = manifest.files[role]
                self._in_use.add(entry.digest)  # not collected by another model's ensure
                try:
                    path = await self.fetcher.fetch(entry)
                    await self.models.stage(model, version, path, entry.digest,
                                            manifest.metadata.get("config"))
                finally:
                    self._in_use.discard(entry.digest)
                self.demand.touch(model)
            if activate:
                await self.models.activate(model, version)
                st.staged = None if st.staged == version else st.staged
            else:
                st.staged = version
            st.error = st.failed_version = None
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        keep = {d for versions in self.models.loaded().values() for d in versions.values()}
        self.fetcher.keep_only(keep | self._in_use)

    def _failed(self, model: str, version: str, exc: BaseException) -> None:
        st = self.state.setdefault(model, ModelState())
        st.error = f"{version}: {exc}"
        st.failed_version, st.failed_at = version, time.monotonic()
        self.last_error = f"{model} {st.error}"
        self.metrics.rollout_failures.inc()
        log.error("%s: %s %s failed, %s keeps serving: %s", self.config.edge_id, model,
                  version, self.models.active(model) or "nothing", exc)

    def _recently_failed(self, model: str, version: str) -> bool:
        st = self.state.get(model)
        return bool(st and st.failed_version == version
                    and time.monotonic() - st.failed_at < self.config.retry_after_s)

    async def _try(self, model: str, version: str, activate: bool, digest: str = "") -> None:
        """`ensure` with a few quick retries; a lasting failure is reported, not raised."""
        for attempt in range(self.config.attempts):
            try:
                await self.ensure(model, version, activate=activate, digest=digest or None)
                return
            except FETCH_ERRORS as exc:
                if attempt + 1 == self.config.attempts or isinstance(exc, NotFound):
                    self._failed(model, version, exc)
                    return
                await asyncio.sleep(0.2 * 2**attempt)

    async def apply(self, event: Event) -> None:
        if event.kind == "purge":
            await self.cache.purge(event.purge_kind, event.purge_value)
            return
        model = event.model
        st = self.state.setdefault(model, ModelState())
        loaded = model in self.models.loaded()
        if event.kind == "stage":
            if self.demand.wanted(model, loaded):
                await self._try(model, event.version, False, event.digest)
            return
        st.desired = event.version
        if self.demand.wanted(model, loaded):
            await self._try(model, event.version, True, event.digest)

    # ----- following the origin
    def _load_position(self) -> Position | None:
        try:
            raw = json.loads(self._position_file.read_text())
            return Position(str(raw["id"]), int(raw["seq"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _save_position(self, pos: Position) -> None:
        """Not fsynced: after a crash the position may be older (entries are applied again,
        which is harmless) or unreadable (a full resync), never wrong."""
        self.position = pos
        atomic_write(self._position_file, json.dumps(asdict(pos)).encode(), durable=False)

    async def _summary(self) -> dict[str, Any]:
        """Current versions at the origin; an origin without a distribution store has
        none (its /dist/v1 answers 404), so there is nothing to follow."""
        try:
            return await self.origin.summary()
        except NotFound:
            if not self._no_api_logged:
                log.warning("%s: the origin serves no model distribution API (/dist/v1); "
                            "nothing to follow", self.config.edge_id)
                self._no_api_logged = True
            return {}

    async def resync(self) -> None:
        """Align with the origin's current manifests and forget every cached entry."""
        assert self.stream is not None
        head = await self.stream.head()
        await self._reconcile(await self._summary())
        await self.cache.purge("all", "")
        self.resyncs += 1
        self.metrics.resyncs.inc()
        log.info("%s: resynced from the origin at stream entry %s", self.config.edge_id,
                 head.id)
        self._save_position(head)

    async def _reconcile(self, summary: dict[str, Any]) -> None:
        loaded = self.models.loaded()
        for model, info in summary.items():
            st = self.state.setdefault(model, ModelState())
            st.desired = info.get("current")
            if not self.demand.wanted(model, model in loaded):
                continue
            if st.desired and self.models.active(model) != st.desired \
                    and not self._recently_failed(model, st.desired):
                await self._try(model, st.desired, True, info.get("digest") or "")
            staged = info.get("staged")
            if staged and staged not in loaded.get(model, {}) \
                    and not self._recently_failed(model, staged):
                await self._try(model, staged, False)

    async def _run_stream(self) -> None:
        assert self.stream is not None
        backoff = 0.2
        if self.position is not None:  # resumed after a restart: what does the origin
            with contextlib.suppress(*FETCH_ERRORS):  # serve now (reported as desired)?
                await self._reconcile(await self._summary())
        while not self._stopping:
            try:
                if self.position is None:
                    await self.resync()  # sets the position
                start = self.position or Position()
                events = await self.stream.read(start.id, count=100,
                                                block_ms=self.config.block_ms)
                self.connected = self.attempted = True
                backoff = 0.2
                last = start
                for event in events:
                    if event.seq != last.seq + 1:
                        log.warning("%s: stream gap (have seq %d, next is %d)",
                                    self.config.edge_id, last.seq, event.seq)
                        self.position = None
                        break
                    await self._apply_entry(event)
                    last = self.position or last
                else:
                    self.head_seq = max(self.head_seq, last.seq)
                    if len(events) < 100 and not self.synced:
                        self.synced = True
                        log.info("%s: caught up with the stream at seq %d",
                                 self.config.edge_id, last.seq)
                    if events or not self.synced:
                        await self.report()
            except REDIS_ERRORS as exc:
                self.connected, self.attempted = False, True
                self.last_error = f"stream: {exc}"
                log.warning("%s: invalidation stream unreachable (%s); retrying in %.1fs",
                            self.config.edge_id, exc, backoff)
                await self._poll_while_disconnected()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except TierUnavailable as exc:  # a purge could not reach a cache tier
                self.last_error = f"purge: {exc}"
                log.warning("%s: %s; applying it again in %.1fs", self.config.edge_id, exc,
                            backoff)
                await asyncio.sleep(backoff)  # the position did not move: nothing is lost
                backoff = min(backoff * 2, 5.0)
            except FETCH_ERRORS as exc:  # origin unreachable during a resync
                self.connected, self.attempted = False, True
                self.last_error = f"resync: {exc}"
                log.warning("%s: resync failed: %s", self.config.edge_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _poll_while_disconnected(self) -> None:
        """Activations still reach this edge while Redis is down (purges wait for it)."""
        now = time.monotonic()
        if now - self._last_poll < self.config.poll_interval_s:
            return
        self._last_poll = now
        with contextlib.suppress(*FETCH_ERRORS):
            await self._reconcile(await self._summary())

    async def _apply_entry(self, event: Event) -> None:
        """Apply one entry (purges are retried a few times), then move past it."""
        for attempt in range(self.config.attempts):
            try:
                await self.apply(event)
                break
            except (*FETCH_ERRORS, *REDIS_ERRORS) as exc:
                if attempt + 1 < self.config.attempts:
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                self.last_error = f"{event.describe()}: {exc}"
                log.error("%s: applying %s failed: %s", self.config.edge_id,
                          event.describe(), exc)
        self._save_position(Position(event.id, event.seq))
        self.metrics.events_applied.labels(event.kind).inc()
        if event.ts:
            self.metrics.propagation.labels(event.kind).observe(
                max(0.0, time.time() - event.ts))
        if self.on_applied is not None:
            self.on_applied(event)

    async def _run_poll(self) -> None:
        while not self._stopping:
            try:
                await self._reconcile(await self._summary())
                self.connected = self.synced = self.attempted = True
            except FETCH_ERRORS as exc:
                self.connected, self.attempted = False, True
                self.last_error = f"poll: {exc}"
                log.warning("%s: polling the origin failed: %s", self.config.edge_id, exc)
            await asyncio.sleep(self.config.poll_interval_s)

    # ----- housekeeping and reporting
    async def _maintain(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.report_interval_s)
            try:
                await self._tick()
            except Exception:  # housekeeping must never stop the agent
                log.exception("%s: housekeeping failed", self.config.edge_id)

    async def _tick(self) -> None:
        loaded = set(self.models.loaded())
        for model in self.demand.hot() - loaded:
            if not self._recently_failed(model, self.state.get(model, ModelState()).desired
                                         or ""):
                self._start_lazy(model)
        for model in self.demand.idle(loaded):
            log.info("%s: evicting idle model %s", self.config.edge_id, model)
            await self.models.unload(model)
        for model, st in self.state.items():  # retry failed activations after a pause
            if st.desired and model in loaded and self.models.active(model) != st.desired \
                    and not self._recently_failed(model, st.desired) \
                    and not self._lock(model).locked():
                self._start_lazy(model)
        if self.stream is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                self.head_seq = (await self.stream.head()).seq
            if time.monotonic() - self._last_audit >= self.config.audit_interval_s:
                self._last_audit = time.monotonic()
                with contextlib.suppress(*FETCH_ERRORS):
                    await self._audit()
        await self.report()

    async def _audit(self) -> None:
        """Catch what the stream did not bring: a model served here at another version
        than the origin's current one, or a position that stays behind the stream's head,
        on two audits in a row (one may just race with an entry being applied). The
        usual cause is a stream read from another Redis or database than the one the
        origin writes to."""
        if not self.connected:
            return
        summary = await self._summary()
        suspects = {m for m, info in summary.items()
                    if info.get("current") and self.models.active(m) is not None
                    and self.models.active(m) != info["current"]
                    and not self._lock(m).locked()}
        pos = (self.position or Position()).seq
        if pos < self.head_seq and pos == self._audit_seq:
            suspects.add("the stream")
        self._audit_seq = pos
        self.behind = sorted(suspects & self._suspects)
        self._suspects = suspects
        if self.behind:
            self.last_error = "behind the origin for " + ", ".join(self.behind)
            log.warning("%s: %s; catching up from the origin", self.config.edge_id,
                        self.last_error)
            await self._reconcile(summary)

    def snapshot(self) -> dict[str, Any]:
        """The rollout state this edge reports (also shown in its /health)."""
        loaded = self.models.loaded()
        models = {}
        for name in sorted(set(loaded) | set(self.state)):
            st = self.state.get(name, ModelState())
            active = self.models.active(name)
            models[name] = {
                "active": active, "digest": loaded.get(name, {}).get(active or ""),
                "loaded": sorted(loaded.get(name, {})), "staged": st.staged,
                "desired": st.desired, "error": st.error,
            }
        pos = self.position or Position()
        lag = max(0, self.head_seq - pos.seq) if self.stream else 0
        self.metrics.stream_lag.set(lag)
        return {
            "edge": self.config.edge_id, "mode": "stream" if self.stream else "poll",
            "ready": self.ready, "synced": self.synced, "connected": self.connected,
            "position": asdict(pos), "head_seq": self.head_seq, "lag": lag,
            "resyncs": self.resyncs, "last_error": self.last_error, "behind": self.behind,
            "models": models, "demand": self.demand.counts(), "updated": time.time(),
        }

    async def report(self) -> None:
        state = self.snapshot()
        try:
            if self.stream is not None:
                await self.stream.redis.set(ROLLOUT_PREFIX + self.config.edge_id,
                                            json.dumps(state), ex=int(REPORT_TTL))
            else:
                await self.origin.report(self.config.edge_id, state)
        except (*FETCH_ERRORS, *REDIS_ERRORS) as exc:
            log.debug("%s: state report failed: %s", self.config.edge_id, exc)
