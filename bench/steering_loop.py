"""Load feedback in a closed loop: does the overloaded edge's share settle, and do big
resolvers stay put?

Real parts: `geodns serve` (DNS over UDP, its health checker probing every edge's
/health over HTTP) on a zone of seven edges at the example cities. Simulated around
it: the edges (small HTTP servers whose health document reports as `load` their
current share of the clients over their capacity) and the resolvers, which ask again
every time their answer's TTL runs out (each from its own loopback address, a random
phase apart) and send their clients to the answered edge. Every client is near Tokyo,
which can carry 100 of them:

* a public resolver without ECS carrying 30 clients (30 % of them);
* 70 client /24s, one client each, asked about with ECS.

So Tokyo is offered a load of 1.0; the watermark rule (low 0.7, high 0.9) keeps
1.0 x 0.9 / (1.0 + 0.2) = 0.75 of it (the target). The run reports when Tokyo's
share settled within 5 points of the target for good (in TTLs from when the overload
formed: Tokyo's share first above `high`), how far it strays from 3 TTLs after that,
and how often the big resolver moved.

    .venv/bin/python bench/steering_loop.py [--ttl 6] [--minutes 3] \\
        [--reference /path/to/old/.venv/bin/geodns]

With `--reference` the same loop first runs against that geodns (e.g. the main
branch's): the figures before and after, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "health"))

from health_stack import GEODNS, GeoDNS  # noqa: E402

ZONE = "loop.example"
NAME = f"edge.{ZONE}."
EDGES = {  # name: (lat, lon), the example zone's cities
    "tokyo": (35.6895, 139.6917), "london": (51.5074, -0.1278),
    "virginia": (39.0438, -77.4874), "mumbai": (19.0760, 72.8777),
    "saopaulo": (-23.5505, -46.6333), "sydney": (-33.8688, 151.2093),
    "frankfurt": (50.1109, 8.6821),
}
CAPACITY = 100.0  # clients an edge carries at load 1.0
LOW, HIGH = 0.7, 0.9
BIG = "public resolver"


@dataclass
class Resolver:
    name: str
    source: str  # the address it asks from
    ecs: str | None  # the client network it asks about (None: no ECS)
    clients: float
    edge: str | None = None
    moves: list[float] = field(default_factory=list)  # when its edge changed


def target_share(offered: float = 1.0) -> float:
    return offered * HIGH / (offered + HIGH - LOW) if offered > LOW else offered


def write_zone(directory: Path, hosts: dict[str, tuple[str, int]], ttl: int) -> None:
    tokyo = {"lat": EDGES["tokyo"][0], "lon": EDGES["tokyo"][1], "country": "JP",
             "continent": "AS", "city": "Tokyo"}
    doc = {
        "zone": ZONE,
        "soa": {"mname": "ns1", "rname": "hostmaster", "serial": 1},
        "records": {"@": {"NS": ["ns1"]}, "ns1": {"A": "127.0.0.1"}, "edge": {"pool": "edges"}},
        "pools": {"edges": {
            "ttl": ttl, "watermarks": {"low": LOW, "high": HIGH},
            "members": [{"name": n, "ipv4": hosts[n][0], "lat": lat, "lon": lon,
                         "health_url": f"http://{hosts[n][0]}:{hosts[n][1]}/health"}
                        for n, (lat, lon) in EDGES.items()],
        }},
        # Every client network and resolver address of the run is in Tokyo.
        "nets": {"198.18.0.0/16": tokyo, "127.97.0.0/16": tokyo, "127.98.0.0/16": tokyo},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{ZONE}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


class World:
    def __init__(self) -> None:
        self.resolvers = [Resolver(BIG, "127.97.0.53", None, 30.0)] + [
            Resolver(f"net{i}", "127.98.0.1", f"198.18.{i}.0", 1.0) for i in range(70)]
        self.by_address: dict[str, str] = {}

    def load(self, edge: str) -> float:
        return sum(r.clients for r in self.resolvers if r.edge == edge) / CAPACITY

    async def health(self, request: web.Request) -> web.Response:
        edge = self.by_address[request.host.split(":")[0]]
        return web.json_response({"status": "ok", "load": round(self.load(edge), 4)})

    async def ask(self, port: int, r: Resolver) -> tuple[str | None, int | None]:
        options = [dns.edns.ECSOption(r.ecs, 24)] if r.ecs else []
        q = dns.message.make_query(NAME, "A", use_edns=0, options=options)
        try:
            reply = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=1.0,
                                             source=r.source)
        except (dns.exception.Timeout, OSError):
            return None, None
        for rrset in reply.answer:
            for rd in rrset:
                if rd.rdtype == 1:
                    return self.by_address[rd.address], rrset.ttl
        return None, None

    async def resolve_until(self, port: int, r: Resolver, ttl: int, start: float,
                            until: float) -> None:
        """Ask again each time the answer's TTL runs out, until `until` (monotonic). The
        loop ends by itself: Python 3.11's asyncio.wait_for (in dnspython's timeout) can
        swallow a cancel that comes as the reply does (CPython gh-86296)."""
        # resolvers are out of phase
        await asyncio.sleep(min(random.uniform(0, ttl), max(0.0, until - time.monotonic())))
        while time.monotonic() < until:
            edge, answer_ttl = await self.ask(port, r)
            if edge is not None:
                if r.edge is not None and edge != r.edge:
                    r.moves.append(time.monotonic() - start)
                r.edge = edge
            await asyncio.sleep(min(answer_ttl or 0.5, max(0.0, until - time.monotonic())))


async def run_loop(geodns: str, ttl: int, minutes: float, block: int) -> dict:
    world = World()
    hosts: dict[str, tuple[str, int]] = {}
    runners = []
    app = web.Application()
    app.router.add_get("/health", world.health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    runners.append(runner)
    for i, name in enumerate(EDGES, 1):
        host = f"127.96.{block}.{i}"
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound port
        hosts[name] = (host, port)
        world.by_address[host] = name
    with tempfile.TemporaryDirectory(prefix="steering-loop-") as tmp:
        write_zone(Path(tmp) / "zones", hosts, ttl)
        server = GeoDNS(Path(tmp) / "zones", log=Path(tmp) / "geodns.log")
        server.start() if geodns == GEODNS else _start_other(server, geodns)
        try:
            probe = world.resolvers[1]
            while (await world.ask(server.port, probe))[0] is None:  # settled, answering
                await asyncio.sleep(0.2)
            start = time.monotonic()
            until = start + minutes * 60
            tasks = [asyncio.create_task(world.resolve_until(server.port, r, ttl, start, until))
                     for r in world.resolvers]
            samples: list[tuple[float, float]] = []
            while time.monotonic() < until:
                await asyncio.sleep(0.5)
                samples.append((time.monotonic() - start, world.load("tokyo")))
            await asyncio.gather(*tasks)
        finally:
            server.stop()
            for r in runners:
                await r.cleanup()
    return summarize(samples, world, ttl, minutes)


def _start_other(server: GeoDNS, geodns: str) -> None:
    import subprocess

    server.proc = subprocess.Popen(
        [geodns, "serve", "--zones", str(server.zones), "--listen", f"127.0.0.1:{server.port}",
         "--http", f"127.0.0.1:{server.http_port}"],
        stdout=open(server.log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


def summarize(samples: list[tuple[float, float]], world: World, ttl: int, minutes: float
              ) -> dict:
    target = target_share()
    settled_at = None  # the first time after which every sample is within 5 points
    for t, share in reversed(samples):
        if abs(share - target) > 0.05:
            break
        settled_at = t
    onset = next((t for t, s in samples if s > HIGH), 0.0)  # the overload has formed
    late = [s for t, s in samples if t >= onset + 3 * ttl]
    big = world.resolvers[0]
    return {
        "settled_ttls": None if settled_at is None else (settled_at - onset) / ttl,
        "late_min": min(late), "late_max": max(late), "late_median": statistics.median(late),
        "big_moves": len(big.moves), "big_moves_per_min": len(big.moves) / minutes,
        "moves_all": sum(len(r.moves) for r in world.resolvers),
        "samples": samples,
    }


def report(name: str, r: dict, ttl: int) -> str:
    settled = ("never" if r["settled_ttls"] is None
               else f"{r['settled_ttls']:.1f} TTLs")
    return (f"{name:8} settled within 5 points {settled:>9} after the overload formed; "
            f"from 3 TTLs after it Tokyo's share "
            f"{r['late_min']:.2f}-{r['late_max']:.2f} (median {r['late_median']:.2f}); "
            f"public resolver moved {r['big_moves']} times "
            f"({r['big_moves_per_min']:.1f}/min); all resolvers moved {r['moves_all']} times")


async def main_async(ttl: int, minutes: float, reference: str | None) -> None:
    results = {}
    if reference:
        results["before"] = await run_loop(reference, ttl, minutes, 1)
        print(report("before", results["before"], ttl), flush=True)
    results["after"] = await run_loop(GEODNS, ttl, minutes, 2)
    print(report("after", results["after"], ttl), flush=True)
    print()
    print(f"TTL {ttl} s, {minutes:g} min per run; Tokyo offered 1.0 (100 clients, 30 behind "
          f"one resolver without ECS); target share {target_share():.2f}")
    for name, r in results.items():
        print(report(name, r, ttl))
    for name, r in results.items():
        trace = " ".join(f"{s:.2f}" for t, s in r["samples"][:: max(1, ttl)][:40])
        print(f"{name} Tokyo share every {ttl / 2:g} s: {trace}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ttl", type=int, default=6)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--reference", metavar="GEODNS", help="run the loop against this geodns first")
    args = p.parse_args()
    asyncio.run(main_async(args.ttl, args.minutes, args.reference))


if __name__ == "__main__":
    main()
