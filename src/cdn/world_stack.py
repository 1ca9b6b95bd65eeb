"""The latency world running: edge nodes, their relays, a GeoDNS server, and clients.

    async with WorldStack(world, workdir, redis_url) as stack:
        client = stack.client("Seoul")
        edge = await client.visit()          # resolve `edge.<zone>`, beacon to the edge

Edge nodes run in this process (aiohttp, each on its backend address, with latency
measurements on); each gets a `Relay` on its public address; `geodns serve` runs as a
child process on the world's zone with ``--latency-redis`` (or, with `in_process`,
the same server object in this process, without health checking, for long runs that
another process must not be able to stop). Used by the end-to-end test,
`bench/latency_world.py` and `cdn simulate --world`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import dns.exception
from aiohttp import web

from cdn.beacon import beacon
from cdn.client import ResolveError, resolve
from cdn.processes import stop_process
from cdn.redis_server import free_port
from cdn.world import Relay, World
from edge.app import build_app
from edge.config import EdgeConfig
from geodns.server import GeoDNSServer, ServerConfig
from healthcheck.plugin import HealthOptions
from latency.settings import LatencySettings

ZONE = "world.test"


@dataclass
class WorldClient:
    """One client host of a city: its own address, stub cache and HTTP connections."""

    stack: WorldStack
    city: str
    address: str
    rng: random.Random
    sample_rate: float | None = None  # None: the edge's (the default beacon rate)
    alternates: int | None = None
    session: aiohttp.ClientSession | None = None
    edge: str | None = None  # public address of the edge it was given
    expires: float = 0.0

    async def resolve(self, name: str = "edge") -> str:
        loop = asyncio.get_running_loop()
        if name == "edge" and self.edge is not None and loop.time() < self.expires:
            return self.edge
        r = await resolve(f"{name}.{ZONE}", self.stack.dns, source=self.address, timeout=5)
        if name == "edge":
            self.edge, self.expires = r.addresses[0], loop.time() + r.ttl
        return r.addresses[0]

    async def visit(self) -> dict:
        """Resolve (unless the answer is cached), then beacon to the edge given."""
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(self.address, 0)),
                timeout=aiohttp.ClientTimeout(total=10))
        address = await self.resolve()
        out = await beacon(self.session, f"http://{address}:{self.stack.port}", self.rng,
                           self.sample_rate, self.alternates)
        out["edge"] = self.stack.edge_name(address)
        return out

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


@dataclass
class WorldStack:
    world: World
    workdir: Path
    redis_url: str
    ttl: int = 10
    geodns_args: tuple[str, ...] = ("--no-health",)
    in_process: bool = False
    port: int = field(default_factory=free_port)
    dns: tuple[str, int] = ("127.0.0.1", 0)
    http_port: int = 0
    proc: subprocess.Popen | None = None
    server: GeoDNSServer | None = None
    _runners: list[web.AppRunner] = field(default_factory=list)
    _relays: list[Relay] = field(default_factory=list)
    _clients: list[WorldClient] = field(default_factory=list)

    def edge_name(self, address: str) -> str:
        return next(e.name for e in self.world.edges if self.world.edge_address(e.name) == address)

    def client(self, city: str, index: int = 0) -> WorldClient:
        c = WorldClient(self, city, self.world.client_address(city, index),
                        random.Random(f"{city}/{index}"))
        self._clients.append(c)
        return c

    async def __aenter__(self) -> WorldStack:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        w = self.world
        public = {e.name: f"http://{w.edge_address(e.name)}:{self.port}" for e in w.edges}
        for e in w.edges:
            config = EdgeConfig(
                listen=f"{w.backend_address(e.name)}:{self.port}", edge_id=e.name,
                cache_dir=self.workdir / "cache" / e.name, l2_fsync=False,
                location=(e.lat, e.lon), region=e.name, latency_redis=self.redis_url,
                latency_name=e.name, latency_peers=public).validate()
            runner = web.AppRunner(build_app(config), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, w.backend_address(e.name), self.port).start()
            self._runners.append(runner)
            relay = Relay(w, e.name, self.port)
            await relay.start()
            self._relays.append(relay)
        zones = self.workdir / "zones"
        zones.mkdir(parents=True, exist_ok=True)
        (zones / f"{ZONE}.yaml").write_text(w.zone_yaml(ZONE, self.port, self.ttl))
        dns_port, self.http_port = free_port(), free_port()
        self.dns = ("127.0.0.1", dns_port)
        if self.in_process:
            self.server = GeoDNSServer(ServerConfig(
                zones, listen=[self.dns], http=("127.0.0.1", self.http_port),
                extra={"health": HealthOptions(enabled=False), "latency_redis": self.redis_url,
                       "latency_settings": LatencySettings()}))
            await self.server.start()
            return
        log = self.workdir / "geodns.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geodns.cli", "serve", "--zones", str(zones),
             "--listen", f"127.0.0.1:{dns_port}", "--http", f"127.0.0.1:{self.http_port}",
             "--latency-redis", self.redis_url, *self.geodns_args],
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"geodns exited: {log.read_text()}")
            try:
                await resolve(f"ns1.{ZONE}", self.dns, timeout=0.5)
                return
            except (dns.exception.DNSException, ResolveError, OSError):
                await asyncio.sleep(0.1)
        raise RuntimeError(f"geodns did not answer: {log.read_text()}")

    async def figures(self) -> dict:
        async with aiohttp.ClientSession() as s, \
                s.get(f"http://127.0.0.1:{self.http_port}/admin/latency") as r:
            return await r.json()

    async def __aexit__(self, *exc: object) -> None:
        for c in self._clients:
            await c.close()
        if self.proc is not None:
            await asyncio.to_thread(stop_process, self.proc)
        if self.server is not None:
            await self.server.stop()
        for relay in self._relays:
            await relay.stop()
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
