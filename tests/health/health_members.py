"""Small real HTTP servers that play pool members in the health tests.

Each serves the edge health document (DESIGN.md) on `/health` from its own loopback
address, and can be told to fail, flap (fail one request in three), drain, hang, or
fail only for probes from a given vantage point. `stop()` closes the socket like a
dead edge; `start()` again brings it back on the same address and port.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field

from aiohttp import web

from cdn.redis_server import free_port
from geodns.steering import Member, Pool
from healthcheck.lag import LoopLag

_counter = itertools.count(1)


def loopback_address(block: int) -> str:
    """A fresh 127.<block>.x.y address per call (block keeps test modules apart)."""
    n = next(_counter)
    return f"127.{block}.{n // 250}.{n % 250 + 1}"


@dataclass
class InFlight:
    now: int = 0
    most: int = 0

    def enter(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def leave(self) -> None:
        self.now -= 1


@dataclass
class MemberServer:
    host: str
    port: int = 0
    status: str = "ok"  # the document's status
    http_status: int = 200
    load: float = 0.1
    hit_rate: float = 0.9
    flap: bool = False  # fail every third probe of the health checker
    hang: float = 0.0  # seconds to wait before answering
    fail_vantages: set[str] = field(default_factory=set)
    requests: int = 0
    probes: int = 0  # requests from the health checker
    probe_times: list[float] = field(default_factory=list)  # when each probe arrived
    group: InFlight | None = None  # counts requests in flight across several servers
    tls: ssl.SSLContext | None = None  # serve HTTPS with this server context
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/health"

    async def _health(self, request: web.Request) -> web.Response:
        self.requests += 1
        group = self.group or InFlight()
        group.enter()
        try:
            if self.hang:
                await asyncio.sleep(self.hang)
            vantage = request.headers.get("X-Healthcheck-Vantage", "")
            if request.headers.get("User-Agent", "").startswith("geocdn-healthcheck"):
                self.probes += 1  # (other readers, such as the dashboard, do not count)
                self.probe_times.append(asyncio.get_running_loop().time())
            if (self.flap and self.probes % 3 == 0) or vantage in self.fail_vantages:
                return web.json_response({"status": "error"}, status=503)
            return web.json_response(
                {"status": self.status, "load": self.load, "hit_rate": self.hit_rate,
                 "models": {"demo": "1"}},
                status=self.http_status,
            )
        finally:
            group.leave()

    async def start(self) -> MemberServer:
        if not self.port:
            self.port = free_port(self.host)
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def pool_of(servers: list[MemberServer], name: str = "edges", ttl: int = 30,
            **health) -> Pool:
    """A steering pool whose members are `servers`, named m0, m1, ..."""
    return Pool(
        name=name, ttl=ttl,
        members=[Member(f"m{i}", (s.host,), (), s.url) for i, s in enumerate(servers)],
        health=health,
    )


async def wait_for(predicate, timeout: float = 60, step: float = 0.02) -> float:
    """Poll `predicate` until true; the seconds it took (AssertionError on timeout). The
    timeout only bounds a hang: a loaded machine may take long to get there."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
    return loop.time() - start


def late_between(lag: LoopLag, start: float, end: float = float("inf")) -> float:
    """Seconds the event loop woke up late between `start` and `end` (loop time), as the
    checker's own `LoopLag` saw it: how much a busy machine stretched that stretch of
    time, so a bound on it can allow for exactly that and no more."""
    return sum(late for at, late in lag.ticks if start <= at <= end)
