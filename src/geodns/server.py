"""The DNS server object: configuration, lifecycle, reload, and the hooks others use.

    config = ServerConfig(zones_dir=Path("zones"), listen=[("127.0.0.1", 5353)],
                          http=("127.0.0.1", 8053))
    server = GeoDNSServer(config)
    await server.start()      # loads zones (raises ZoneLoadError if any is bad)
    ...
    result = await server.reload()   # ReloadResult(ok, zones, errors)
    await server.stop()

Interface for the features that plug in (see also `geodns.plugins`):

* `server.set_health(view)`: the HealthView handed to every zone's steering, now and
  after each reload (`ZoneSteering.set_health`).
* `server.http_app`: the aiohttp Application of the admin port (routes /metrics,
  /admin/reload, /admin/zones, /healthz); add routes before `start()`. None in a
  worker process, where no HTTP port is served.
* `server.on_start` / `server.on_stop`: lists of `async def hook(server)` run after the
  sockets are up / before they close (start background tasks there).
* `server.on_reload`: list of `def hook(server) -> str | None` called after each
  successful zone swap; a hook returns a message when its own part of the reload
  failed (e.g. a GeoIP database that does not open: the previous one keeps serving),
  which makes the reload's answer, log and metrics say it failed, like a bad zone.
* `server.zones`: the zones being served (origin -> Zone); `server.config.extra`: the
  options that plugins added to the command line.

Processes (`server.role`): "single" serves DNS and HTTP in one process (--workers 1).
With --workers N > 1 (`geodns.workers`), N "worker" processes serve DNS on the same
ports (SO_REUSEPORT) and a "supervisor" parent serves HTTP; a reload in the parent
(SIGHUP or POST /admin/reload) validates every file, then signals each worker with
SIGHUP to do the same swap.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from geocdn.tasks import cancel_and_wait
from geodns.cookies import CookieJar
from geodns.engine import DEFAULT_CACHE_BYTES, Engine
from geodns.errors import GeoDNSError
from geodns.metrics import LAST_RELOAD_OK, RELOADS, ZONE_SERIAL, Tally
from geodns.plugins import Plugin, load_plugins
from geodns.protocols import RateLimitedUDPProtocol, TCPLimits, TCPProtocol, UDPProtocol
from geodns.rrl import RateLimiter, RRLConfig
from geodns.steering.health import HealthView
from geodns.zone import Zone
from geodns.zonebuild import build, release
from geodns.zonefile import Problem

log = logging.getLogger("geodns")
Hook = Callable[["GeoDNSServer"], Awaitable[None]]


@dataclass
class ServerConfig:
    zones_dir: Path
    listen: list[tuple[str, int]] = field(default_factory=lambda: [("127.0.0.1", 5353)])
    http: tuple[str, int] | None = None  # admin HTTP: metrics, reload
    admin_token: str | None = None  # admin writes (geocdn.auth); None: loopback clients only
    workers: int = 1
    nsid: str = ""  # NSID and CHAOS id.server; "": neither is answered (no host name leak)
    cookie_secret: bytes | None = None  # None: a random secret per start
    rrl: RRLConfig = field(default_factory=RRLConfig)
    tcp_idle_timeout: float = 10.0  # RFC 7766 §6.2.3 suggests seconds, not minutes
    tcp_message_timeout: float = 5.0  # a message's first octet to its last
    tcp_max_connections: int = 256
    answer_cache_bytes: int = DEFAULT_CACHE_BYTES  # per process, both answer caches
    plugins: list[Plugin] | None = None  # None: the installed entry points
    extra: dict[str, Any] = field(default_factory=dict)  # plugins' own options


@dataclass
class ReloadResult:
    ok: bool
    zones: dict[str, int]  # origin -> serial, of the zones being served afterwards
    errors: list[str]

    def as_json(self) -> dict:
        return {"ok": self.ok, "zones": self.zones, "errors": self.errors}


class ZoneLoadError(GeoDNSError, RuntimeError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def load_and_report(zones_dir: Path) -> tuple[dict[str, Zone], list[Problem]]:
    """`load_zones` in a child process (`geodns.zonebuild`), logging one line per
    problem."""
    zones, problems = build(zones_dir)
    for p in problems:
        log.error("zone rejected: %s", p)
    return zones, problems


class GeoDNSServer:
    def __init__(self, config: ServerConfig, role: str = "single") -> None:
        self.config = config
        self.role = role
        self.tally = Tally()
        rrl = RateLimiter(config.rrl) if config.rrl.enabled else None
        self.engine = Engine(config.nsid.encode(), CookieJar(config.cookie_secret), rrl,
                             self.tally, config.answer_cache_bytes)
        self.health: HealthView | None = None
        self.on_start: list[Hook] = []
        self.on_stop: list[Hook] = []
        self.on_reload: list[Callable[[GeoDNSServer], str | None]] = []
        self.http_app: web.Application | None = None
        if role != "worker" and config.http is not None:
            from geodns.admin import build_app

            self.http_app = build_app(self)
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.base_events.Server] = []
        self._tcp_connections: dict[TCPProtocol, None] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._reload_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        plugins = config.plugins if config.plugins is not None else load_plugins()
        for plugin in plugins:
            plugin.setup(self)

    @property
    def zones(self) -> dict[str, Zone]:
        return self.engine.zones

    @property
    def reports(self) -> bool:
        """Whether this process keeps the reload metrics (one process per server)."""
        return self.role != "worker"

    # -- zones -----------------------------------------------------------------

    def set_health(self, view: HealthView) -> None:
        self.health = view
        self._apply_health(self.zones)

    def _apply_health(self, zones: dict[str, Zone]) -> None:
        if self.health is None:
            return
        for zone in zones.values():
            if zone.steering is not None:
                zone.steering.set_health(self.health)

    def _swap(self, zones: dict[str, Zone]) -> None:
        self._apply_health(zones)
        old = set(self.zones)
        self.engine.set_zones(zones)
        if self.reports:
            for origin in old - set(zones):
                ZONE_SERIAL.remove(origin)
            for origin, zone in zones.items():
                ZONE_SERIAL.labels(origin).set(zone.serial)

    def _serials(self) -> dict[str, int]:
        return {origin: zone.serial for origin, zone in sorted(self.zones.items())}

    async def reload(self) -> ReloadResult:
        """Validate every zone file, then swap all zones at once; on any problem keep
        serving the old zones and say why."""
        async with self._reload_lock:
            zones, problems = await asyncio.to_thread(load_and_report, self.config.zones_dir)
            if problems:
                log.error("reload failed: %d problem(s) in %s; still serving %d zone(s) "
                          "from before", len(problems), self.config.zones_dir, len(self.zones))
                if self.reports:
                    RELOADS.labels("failed").inc()
                    LAST_RELOAD_OK.set(0)
                return ReloadResult(False, self._serials(), [str(p) for p in problems])
            previous = self.zones
            self._swap(zones)
            errors = [e for e in (hook(self) for hook in self.on_reload) if e]
            await asyncio.to_thread(release, previous)
            serials = ", ".join(f"{o} serial {s}" for o, s in self._serials().items())
            if errors:
                log.error("reload failed: zones swapped (%s), but: %s", serials,
                          "; ".join(errors))
            else:
                log.info("reload ok: %s", serials)
            if self.reports:
                RELOADS.labels("failed" if errors else "ok").inc()
                LAST_RELOAD_OK.set(0 if errors else 1)
            return ReloadResult(not errors, self._serials(), errors)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        zones, problems = await asyncio.to_thread(load_and_report, self.config.zones_dir)
        if problems:
            raise ZoneLoadError(problems)
        self._swap(zones)
        if self.reports:
            LAST_RELOAD_OK.set(1)
        loop = asyncio.get_running_loop()
        if self.role != "supervisor":
            udp = UDPProtocol if self.engine.rrl is None else RateLimitedUDPProtocol
            limits = TCPLimits(self.config.tcp_idle_timeout, self.config.tcp_message_timeout,
                               self.config.tcp_max_connections)
            for host, port in self.config.listen:
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(udp, self.engine), local_addr=(host, port),
                    reuse_port=self.role == "worker")
                self._transports.append(transport)
                self._servers.append(await loop.create_server(
                    lambda: TCPProtocol(self.engine, self._tcp_connections, limits),
                    host, port, reuse_port=self.role == "worker"))
        http = self.config.http if self.http_app is not None else None
        if self.http_app is not None and http is not None:
            self._runner = web.AppRunner(self.http_app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, *http).start()
        self._tasks.append(asyncio.create_task(self._every_second()))
        for hook in self.on_start:
            await hook(self)
        where = ", ".join(f"{h}:{p}" for h, p in self.config.listen)
        log.info("started (%s, pid %d): %s; %s%s", self.role, os.getpid(),
                 ", ".join(f"{o} serial {s}" for o, s in self._serials().items()),
                 "DNS on " + where if self.role != "supervisor" else "DNS in the workers",
                 f", HTTP {http[0]}:{http[1]}" if http is not None else "")

    async def _every_second(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.engine.new_second()
            self.tally.flush()

    async def stop(self) -> None:
        for hook in self.on_stop:
            await hook(self)
        await cancel_and_wait(self._tasks)
        self.tally.flush()
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for conn in list(self._tcp_connections):
            conn.transport.close()
        for server in self._servers:
            await server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("stopped (%s, pid %d)", self.role, os.getpid())

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop_requested(self) -> None:
        """Wait until `request_stop()` is called (by a signal handler, say)."""
        await self._stopping.wait()

    async def serve_forever(self, stop_signals: tuple[int, ...] = (signal.SIGTERM,
                                                                   signal.SIGINT)) -> None:
        """Start, handle SIGHUP (reload) and `stop_signals` (stop), stop cleanly."""
        loop = asyncio.get_running_loop()
        await self.start()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        for sig in stop_signals:
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.stop_requested()
        finally:
            await self.stop()
