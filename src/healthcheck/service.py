"""`HealthService`: probes every pool member and keeps the state that answers steer by.

See the package docstring for how `geodns serve` drives it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from geocdn.tasks import cancel_and_wait
from geodns.steering.health import MemberHealth, Status
from geodns.steering.health_settings import HealthSettings, check_health_url, parse_health_settings
from geodns.steering.shedding import ShedController
from healthcheck import metrics
from healthcheck.checks import Check, CheckKey, check_key
from healthcheck.lag import LoopLag
from healthcheck.overrides import Override, OverrideSet, best_override, describe_selector, iso
from healthcheck.probes import ProbeResult, probe, probe_kind
from healthcheck.quorum import Vote, combine
from healthcheck.shared import SharedState

log = logging.getLogger("healthcheck")

NOT_PROBED = MemberHealth(status=Status.UP, reason="not probed (no health_url)")
VANTAGE_HEADER = "X-Healthcheck-Vantage"  # tells an edge which vantage point probes it
KEEPALIVE_S = 30.0  # an idle probe connection is closed after this (probes come far sooner)
TICK = 0.1  # housekeeping: override file changes and expiry, settle deadlines
# Timeouts in a row that a stalled checker may leave uncounted; a hung target is then
# called down at most this many probes later (on a machine busy enough to stall us).
MAX_INCONCLUSIVE = 2


def pool_ttl(min_ttl: int, max_ttl: int | None, ttl: int, unsteady: bool) -> int:
    """`min_ttl` for an answer that an unsteady member (DOWN, UNKNOWN or changing) is
    part of, else `max_ttl` (default: the pool's `ttl`); never above `max_ttl`."""
    high = ttl if max_ttl is None else max_ttl
    return min(min_ttl, high) if unsteady else high


@dataclass
class PoolBinding:
    """One pool of one zone: its settings and which check each member follows."""

    zone: str
    name: str
    settings: HealthSettings
    ttl: int
    members: dict[str, CheckKey | None]
    added: float = field(default_factory=time.monotonic)  # for the settle deadline
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    shedding: dict[str, ShedController] = field(default_factory=dict)  # per member


class ZoneHealthView:
    """The `HealthView` of one zone (or, with zone None, of the first zone per pool)."""

    def __init__(self, service: HealthService, zone: str | None) -> None:
        self._service = service
        self.zone = zone

    @property
    def generation(self) -> int:
        return self._service.generation

    def get(self, pool: str, member: str) -> MemberHealth:
        return self._service.state(self.zone, pool, member)

    def settled(self, pool: str) -> bool:
        """False while the pool's members are UNKNOWN and its settle deadline has not passed:
        the server must not answer from the pool yet."""
        if not self._service.has_targets:
            return False  # not even told the zones yet: nothing has settled
        binding = self._service.binding(self.zone, pool)
        return binding is None or binding.settled.is_set()

    async def wait_settled(self, pool: str) -> None:
        """Return once `settled(pool)` (at most the pool's `settle` seconds after start)."""
        while not self._service.has_targets:
            await asyncio.sleep(TICK)
        binding = self._service.binding(self.zone, pool)
        if binding is not None:
            await binding.settled.wait()

    def ttl_for(self, pool: str, ttl: int, unsteady: bool) -> int:
        """The TTL of an answer from `pool` whose zone-file TTL is `ttl`."""
        binding = self._service.binding(self.zone, pool)
        if binding is None:
            return ttl
        return pool_ttl(binding.settings.min_ttl, binding.settings.max_ttl, ttl, unsteady)


class HealthService:
    def __init__(
        self,
        pools_by_zone: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        redis_url: str | None = None,
        vantage: str | None = None,
        overrides_path: str | None = None,
        quorum: int | None = None,
        max_concurrent: int = 32,
        redis_prefix: str = "geocdn:health",
        redis_ttl: float = 2.0,
        poll_interval: float = 0.2,
        admin_token: str | None = None,
    ) -> None:
        self.generation = 0
        self.has_targets = False  # update_targets() was called at least once
        self.vantage = vantage
        self.quorum = quorum
        self.poll_interval = poll_interval
        self.max_concurrent = max_concurrent
        self.overrides = OverrideSet(overrides_path)
        self.shared = SharedState(redis_url, redis_prefix, redis_ttl, admin_token) \
            if redis_url else None
        self.redis_ok = False
        self._redis_lost = False  # Redis was in use, then unreachable
        self.live_vantages: list[str] = []
        self.view = ZoneHealthView(self, None)
        self._views: dict[str, ZoneHealthView] = {}
        self._pools: dict[tuple[str, str], PoolBinding] = {}
        self._checks: dict[CheckKey, Check] = {}
        self._users: dict[CheckKey, list[tuple[str, str, str]]] = {}
        self._effective: dict[CheckKey, MemberHealth] = {}
        self._remote: dict[str, list[Vote]] | None = None  # None: Redis not in use
        self._remote_overrides: list[Override] = []
        self._active_overrides: tuple = ()
        # selector -> (override, when it ended): the state's "since" after an undrain
        self._ended_overrides: dict[tuple, tuple[Override, float]] = {}
        # (zone or None, pool, member) -> effective state, at `_states_generation`
        self._states: dict[tuple[str | None, str, str], MemberHealth] = {}
        self._states_generation = -1
        self._tasks: dict[CheckKey, asyncio.Task] = {}
        self._background: list[asyncio.Task] = []
        self._sem = asyncio.Semaphore(max_concurrent)
        self._local_changed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self.lag = LoopLag()
        self.overrides.load(_report_overrides)
        self._active_overrides = self._overrides_in_force(time.time())
        if pools_by_zone:
            self.update_targets(pools_by_zone)

    # -- targets -------------------------------------------------------------------

    def view_for(self, zone: str) -> ZoneHealthView:
        if zone not in self._views:
            self._views[zone] = ZoneHealthView(self, zone)
        return self._views[zone]

    def bindings(self) -> Mapping[tuple[str, str], PoolBinding]:
        """Every followed pool, by (zone, pool)."""
        return self._pools

    def binding(self, zone: str | None, pool: str) -> PoolBinding | None:
        if zone is not None:
            return self._pools.get((zone, pool))
        return next((b for (_, p), b in self._pools.items() if p == pool), None)

    def update_targets(self, pools_by_zone: Mapping[str, Mapping[str, Any]]) -> None:
        """Follow the zones' pools (zone name -> pool name -> steering `Pool`).

        Call at start and after every zone reload. Targets still in use keep their
        state; new ones start UNKNOWN (their pool waits to settle); gone ones stop.
        """
        pools: dict[tuple[str, str], PoolBinding] = {}
        checks: dict[CheckKey, Check] = {}
        users: dict[CheckKey, list[tuple[str, str, str]]] = {}
        for zone, zone_pools in pools_by_zone.items():
            for name, pool in zone_pools.items():
                where = f"{zone}: pools.{name}"
                settings = parse_health_settings(pool.health, _warn, f"{where}.health")
                members: dict[str, CheckKey | None] = {}
                for m in pool.members:
                    url = check_health_url(m.health_url, _warn, f"{where}.{m.name}.health_url")
                    key = check_key(url, settings) if url else None
                    members[m.name] = key
                    if key is None or url is None:
                        continue
                    users.setdefault(key, []).append((zone, name, m.name))
                    check = checks.get(key) or self._checks.get(key)
                    if check is None:
                        check = Check(url, settings, settings.interval, settings.jitter)
                    elif key not in checks:
                        check.interval, check.jitter = settings.interval, settings.jitter
                    else:
                        check.interval = min(check.interval, settings.interval)
                        check.jitter = min(check.jitter, settings.jitter)
                    checks[key] = check
                binding = PoolBinding(zone, name, settings, pool.ttl, members)
                old = self._pools.get((zone, name))
                if old is not None and old.settings.settle == settings.settle:
                    binding.added, binding.settled = old.added, old.settled
                w, ttl = pool.watermarks, pool_ttl(settings.min_ttl, settings.max_ttl,
                                                   pool.ttl, False)
                for m in pool.members:
                    kept = old.shedding.get(m.name) if old is not None else None
                    if kept is None or (kept.low, kept.high, kept.ttl) != (w.low, w.high, ttl):
                        kept = ShedController(w.low, w.high, ttl)
                    binding.shedding[m.name] = kept
                pools[(zone, name)] = binding
        for key in set(self._tasks) - set(checks):
            self._tasks.pop(key).cancel()
        self._pools, self._checks, self._users = pools, checks, users
        self.has_targets = True
        self._effective = {k: v for k, v in self._effective.items() if k in checks}
        for key in checks:
            self._effective.setdefault(key, checks[key].health)
            if self._session is not None and key not in self._tasks:
                self._tasks[key] = asyncio.create_task(self._probe_loop(key))
        self._bump()
        self._check_settled()
        log.info("health: following %d pools, %d distinct targets", len(pools), len(checks))

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        # Keep-alive: a probe is one round trip on a connection kept from the last one
        # (a fresh connection costs two, and the target's accept queue on a busy host).
        # A target that dies closes or stops answering on it; aiohttp retries a request
        # once on a fresh connection when a reused one turns out closed.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
            headers={"User-Agent": "geocdn-healthcheck",
                     **({VANTAGE_HEADER: self.vantage} if self.vantage else {})},
        )
        for key in self._checks:
            self._tasks[key] = asyncio.create_task(self._probe_loop(key))
        self._background.append(asyncio.create_task(self.lag.run()))
        self._background.append(asyncio.create_task(self._housekeeping()))
        metrics.MEMBER_STATE.watch(self)
        if self.shared is not None:
            self._background.append(asyncio.create_task(self._read_shared()))
            if self.vantage:
                self._background.append(asyncio.create_task(self._publish_shared()))

    async def stop(self) -> None:
        metrics.MEMBER_STATE.forget(self)
        await cancel_and_wait([*self._tasks.values(), *self._background])
        self._tasks.clear()
        self._background.clear()
        if self.shared is not None:
            if self.vantage:
                try:
                    await self.shared.withdraw(self.vantage)
                except Exception:  # noqa: BLE001 - Redis may be gone; the TTL cleans up
                    pass
            await self.shared.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def settled(self, timeout: float | None = None) -> bool:
        """Wait until every pool has settled (or `timeout`); True when all have."""
        try:
            async with asyncio.timeout(timeout):
                while not self.has_targets:
                    await asyncio.sleep(TICK)
                await asyncio.gather(*(b.settled.wait() for b in self._pools.values()))
        except TimeoutError:
            return False
        return True

    # -- probing -------------------------------------------------------------------

    async def _probe_loop(self, key: CheckKey) -> None:
        loop = asyncio.get_running_loop()
        check = self._checks[key]
        await asyncio.sleep(random.uniform(0, check.interval * check.jitter))
        while True:
            started = loop.time()
            assert self._session is not None  # probing tasks run between start and stop
            async with self._sem:
                began = loop.time()
                result = await probe(check.url, check.settings, self._session)
            if (result.timed_out and check.inconclusive < MAX_INCONCLUSIVE
                    and self.lag.worst_since(began) > check.settings.timeout / 2):
                # This process was itself stalled for half the timeout or more (a busy
                # machine): the answer may have arrived and not been read in time.
                check.inconclusive += 1
                metrics.PROBE_RESULTS.labels(check.url, "inconclusive").inc()
            else:
                check.inconclusive = 0
                self._on_result(key, check, result)
            pause = check.interval * random.uniform(1 - check.jitter, 1 + check.jitter)
            await asyncio.sleep(max(0.0, started + pause - loop.time()))

    def _on_result(self, key: CheckKey, check: Check, result: ProbeResult) -> None:
        if self._checks.get(key) is not check:
            return  # the target was dropped by a reload while the probe ran
        kind = probe_kind(check.url, check.settings)
        metrics.PROBE_LATENCY.labels(kind).observe(result.latency_ms / 1000)
        metrics.PROBE_RESULTS.labels(check.url, "ok" if result.ok else "fail").inc()
        before = check.health.status
        if not check.record(result):
            return
        self._local_changed.set()
        if self._remote is not None and check.health.status != before:
            log.info("health: %s local probes say %s -> %s: %s", check.url, before.value,
                     check.health.status.value, check.health.reason)
        self._refresh([key])

    # -- effective state -----------------------------------------------------------

    def _refresh(self, keys: Iterable[CheckKey]) -> None:
        changed = False
        for key in keys:
            check = self._checks.get(key)
            if check is None:
                continue
            new, source = check.health, "local probes"
            votes = self._remote.get(check.url) if self._remote is not None else None
            combined = combine(votes, self.quorum) if votes else None
            if combined is not None:
                new, source = combined, "vantage quorum"
            old = self._effective.get(key)
            if old is not None and old.status == new.status:
                new = replace(new, since=old.since, reason=old.reason)
            elif old is not None:
                new = replace(new, since=time.time())
                metrics.STATE_CHANGES.labels(check.url, new.status.value).inc()
                names = ", ".join("/".join(u) for u in self._users.get(key, []))
                level = logging.WARNING if new.status == Status.DOWN else logging.INFO
                log.log(level, "health: %s [%s] %s -> %s (%s): %s", check.url, names,
                        old.status.value, new.status.value, source, new.reason)
            if old is None or (old.status, old.changing, old.load, old.hit_rate) != (
                new.status, new.changing, new.load, new.hit_rate
            ):
                changed = True
            self._effective[key] = new
        if changed:
            self._bump()
            self._check_settled()

    def _bump(self) -> None:
        self.generation += 1

    def _overrides_in_force(self, now: float) -> tuple:
        return tuple(
            o for o in (*self.overrides.items, *self._remote_overrides) if o.active(now)
        )

    def _override_for(self, zone: str, pool: str, member: str, now: float) -> Override | None:
        return self.overrides.lookup(zone, pool, member, now) or best_override(
            self._remote_overrides, zone, pool, member, now
        )

    def member_state(self, zone: str, pool: str, member: str, now: float) -> tuple[
        MemberHealth, Override | None
    ]:
        """The effective state of one member, and the override that set it (if any)."""
        binding = self._pools[(zone, pool)]
        key = binding.members.get(member)
        base = self._effective.get(key, NOT_PROBED) if key else NOT_PROBED
        if base.status == Status.UNKNOWN and binding.settled.is_set():
            # The pool is answered (its states settled or its deadline passed) but this
            # member has no verdict yet (a slow target, or one added by a reload): not
            # up, for steering; the pool's all-down policy decides if nothing is left.
            base = replace(base, status=Status.DOWN, changing=True,
                           reason="no probe verdict yet: not answered until one")
        shedding = binding.shedding.get(member)
        if shedding is not None and shedding.fraction:
            base = replace(base, shed=shedding.fraction)
        ov = self._override_for(zone, pool, member, now)
        if ov is None:
            return self._since_override_ended(zone, pool, member, base), None
        until = f" until {iso(ov.until)}" if ov.until else ""
        forced = replace(base, status=ov.state, since=ov.set_at, changing=False,
                         reason=f"{ov.kind} override{until}: {ov.reason or 'set by operator'}")
        return forced, ov

    def _since_override_ended(self, zone: str, pool: str, member: str,
                              base: MemberHealth) -> MemberHealth:
        """After an override ends, the member's state dates from then, not from the probe
        verdict the override had hidden."""
        ends = [(t, o) for o, t in self._ended_overrides.values() if o.matches(zone, pool, member)]
        if not ends:
            return base
        ended_at, o = max(ends, key=lambda e: e[0])
        if base.since and base.since >= ended_at:
            return base
        return replace(base, since=ended_at,
                       reason=f"{o.kind} override ended; probes say {base.status.value}")

    def state(self, zone: str | None, pool: str, member: str) -> MemberHealth:
        """One member's effective state (zone None: of the first zone with the pool),
        worked out when first asked and kept until the generation moves. Per member, not
        all at once: a big zone has thousands, and a reload moves the generation."""
        if self._states_generation != self.generation:
            self._states, self._states_generation = {}, self.generation
        key = (zone, pool, member)
        health = self._states.get(key)
        if health is None:
            binding = next((b for (z, p), b in self._pools.items() if p == pool and
                            member in b.members), None) if zone is None else \
                self._pools.get((zone, pool))
            if binding is None or member not in binding.members:
                return NOT_PROBED
            health = self.member_state(binding.zone, pool, member, time.time())[0]
            self._states[key] = health
        return health

    def statuses(self) -> Iterator[tuple[str, str, str, Status]]:
        """Every member's effective status (the `healthcheck_member_state` metric)."""
        for (zone, pool), binding in list(self._pools.items()):
            for member in binding.members:
                yield zone, pool, member, self.state(zone, pool, member).status

    def _update_shedding(self) -> None:
        """Feed every UP member's load to its pool's shed controller."""
        now, changed = time.monotonic(), False
        for binding in self._pools.values():
            for member, shedding in binding.shedding.items():
                key = binding.members.get(member)
                state = self._effective.get(key) if key else None
                if state is not None and state.status == Status.UP:
                    changed = shedding.update(now, state.load) or changed
        if changed:
            self._bump()

    def _check_settled(self) -> None:
        now_mono, now = time.monotonic(), time.time()
        for (zone, pool), b in self._pools.items():
            if b.settled.is_set():
                continue
            late = now_mono >= b.added + b.settings.settle
            known = all(
                self.member_state(zone, pool, m, now)[0].status != Status.UNKNOWN
                for m in b.members
            )
            if late or known:
                b.settled.set()
                self._bump()
                log.info("health: pool %s/%s settled (%s)", zone, pool,
                         "every member has a state" if known else "settle deadline passed")

    # -- overrides -----------------------------------------------------------------

    def reload_overrides(self) -> None:
        """Re-read the override file (SIGHUP, or a change on disk)."""
        if self.overrides.load(_report_overrides):
            log.info("health: overrides reloaded from %s (%d in force)", self.overrides.path,
                     len(self.overrides.items))
        self._overrides_changed()

    def set_override(self, override: Override) -> bool:
        """Add or replace an override; persisted when there is a file (returns whether)."""
        self.overrides.put(override)
        saved = self.overrides.save()
        log.warning("health: override set: %s", override.to_dict())
        self._overrides_changed()
        return saved

    def remove_override(self, selector: tuple) -> bool:
        removed = self.overrides.remove(selector)
        if removed:
            self.overrides.save()
            log.warning("health: override removed: %s", describe_selector(selector))
            self._overrides_changed()
        return removed

    def _overrides_changed(self) -> None:
        now = time.time()
        active = self._overrides_in_force(now)
        if active != self._active_overrides:
            for ended in set(self._active_overrides) - set(active):
                self._ended_overrides[ended.selector] = (ended, now)
            self._active_overrides = active
            self._local_changed.set()
            self._bump()
            self._check_settled()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            if self.overrides.changed_on_disk():
                self.reload_overrides()
            else:
                self._overrides_changed()  # an override may have expired
            self._check_settled()
            self._update_shedding()

    # -- Redis ---------------------------------------------------------------------

    async def _publish_shared(self) -> None:
        assert self.shared is not None and self.vantage
        beat = self.shared.ttl / 4
        failing = False
        while True:
            try:
                async with asyncio.timeout(beat):
                    await self._local_changed.wait()
            except TimeoutError:
                pass
            self._local_changed.clear()
            states = {c.url: c.health for c in self._checks.values()}
            now = time.time()
            try:
                await self.shared.publish(
                    self.vantage, states, [o for o in self.overrides.items if o.active(now)]
                )
                if failing:
                    log.warning("health: publishing to Redis again as %s", self.vantage)
                failing = False
            except Exception as exc:  # noqa: BLE001 - any Redis failure: retry next beat
                if not failing:
                    log.warning("health: cannot publish to Redis: %s", exc)
                failing = True

    async def _read_shared(self) -> None:
        assert self.shared is not None
        while True:
            try:
                votes, overrides, live = await self.shared.read()
            except Exception as exc:  # noqa: BLE001 - any Redis failure means: go local
                if self.redis_ok or self._remote is not None:
                    log.warning("health: Redis unreachable (%s): using local probes", exc)
                    self._redis_lost = True
                self.redis_ok, self._remote, self.live_vantages = False, None, []
                self._set_remote_overrides([])
                metrics.REDIS_UP.set(0)
            else:
                if not self.redis_ok:
                    live_text = ", ".join(live) or "none yet"
                    if self._redis_lost:
                        log.warning("health: Redis reachable again: sharing probe results "
                                    "(vantage points live: %s)", live_text)
                    else:
                        log.info("health: sharing probe results over Redis (vantage points "
                                 "live: %s)", live_text)
                self.redis_ok, self._remote, self.live_vantages = True, votes, live
                self._set_remote_overrides(overrides)
                metrics.REDIS_UP.set(1)
                metrics.VANTAGES_LIVE.set(len(live))
            self._refresh(list(self._checks))
            await asyncio.sleep(self.poll_interval)

    def _set_remote_overrides(self, overrides: list[Override]) -> None:
        if overrides != self._remote_overrides:
            self._remote_overrides = overrides
            self._overrides_changed()

    # -- reporting -----------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Every member's state for the admin API."""
        now = time.time()
        out = []
        for (zone, pool), b in sorted(self._pools.items()):
            for member, key in b.members.items():
                health, ov = self.member_state(zone, pool, member, now)
                check = self._checks.get(key) if key else None
                out.append({
                    "zone": zone, "pool": pool, "member": member,
                    "target": check.url if check else None,
                    "status": health.status.value,
                    "probed_status": check.health.status.value if check else None,
                    "load": health.load, "hit_rate": health.hit_rate, "shed": health.shed,
                    "latency_ms": (round(check.last_result.latency_ms, 3)
                                   if check and check.last_result else None),
                    "since": health.since, "since_iso": iso(health.since) if health.since else None,
                    "reason": health.reason, "changing": health.changing,
                    "last_result": (check.last_result.reason if check and check.last_result
                                    else None),
                    "override": ov.to_dict() if ov else None,
                    "settled": b.settled.is_set(),
                })
        return out


def _report_overrides(where: str, message: str) -> None:
    log.error("health overrides: %s: %s", where, message)


def _warn(where: str, message: str) -> None:
    log.warning("%s: %s", where, message)
