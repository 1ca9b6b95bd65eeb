"""The `geodns serve` plugin (entry point `geodns.plugins: latency`): measured latency.

Adds ``--latency-redis URL`` and ``--latency-expiry SECONDS``. Every server process
then keeps a `FigureTable`, follows the samples the edges write to that Redis
(`store.Follower`), and hands the table to each zone's steering (again after every
reload) for the `latency` filter.
Without the option the filter finds no figures and keeps the order it is given.

Admin port: ``GET /admin/latency`` lists every network's figures as JSON, with the
network's region (city, else country, else continent) as the served zones locate it;
the dashboard shows them per region and edge.
Metrics: ``geodns_latency_networks`` (client networks tracked),
``geodns_latency_networks_evicted_total`` (dropped to stay within `max_networks`),
``geodns_latency_figures`` (usable (network, edge) figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import Counter, Gauge

from geocdn.redis_url import connect
from geocdn.tasks import cancel_and_wait
from geodns.plugins import Plugin
from geodns.steering import Client
from geodns.steering.decide import region_of
from geodns.steering.locate import Locator

from .settings import LatencySettings
from .store import Follower
from .table import FigureTable

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer, ServerConfig

NETWORKS = Gauge("geodns_latency_networks", "Client networks with latency samples tracked",
                 multiprocess_mode="max")
EVICTED = Counter("geodns_latency_networks_evicted",
                  "Client networks dropped to keep the latency table within its bound")
FIGURES = Gauge("geodns_latency_figures", "Usable (client network, edge) latency figures",
                multiprocess_mode="max")


class LatencyPlugin(Plugin):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("latency steering")
        g.add_argument("--latency-redis", metavar="URL",
                       help="follow the latency samples that edges write to this Redis "
                       "(the `latency` filter steers by them); default: no figures")
        g.add_argument("--latency-expiry", type=float, metavar="SECONDS",
                       default=LatencySettings.expiry_s,
                       help="samples older than this no longer count (default "
                       f"{LatencySettings.expiry_s:g}); with Redis unreachable, the figures "
                       "held steer until then")

    def configure(self, args: argparse.Namespace, config: ServerConfig) -> None:
        if args.latency_expiry <= 0:
            raise SystemExit("geodns: --latency-expiry must be above 0")
        if args.latency_redis:
            config.extra["latency_redis"] = args.latency_redis
            config.extra["latency_settings"] = LatencySettings(expiry_s=args.latency_expiry)

    def setup(self, server: GeoDNSServer) -> None:
        url = server.config.extra.get("latency_redis")
        if not url:
            return
        table = FigureTable(server.config.extra.get("latency_settings"))
        redis = connect(url, socket_timeout=2, socket_connect_timeout=2)
        follower = Follower(redis, table)
        tasks: list[asyncio.Task] = []
        evicted_seen = [0]

        def give(server: GeoDNSServer) -> None:
            for zone in server.zones.values():
                if zone.steering is not None:
                    zone.steering.set_latency(table)

        async def follow() -> None:
            sync = asyncio.ensure_future(follower.run())
            try:
                while True:
                    await asyncio.sleep(table.settings.sync_interval_s)
                    NETWORKS.set(table.networks)
                    FIGURES.set(sum(len(f) for f in table.snapshot().values()))
                    EVICTED.inc(table.evicted - evicted_seen[0])
                    evicted_seen[0] = table.evicted
            finally:
                sync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sync

        async def start(server: GeoDNSServer) -> None:
            give(server)
            tasks.append(asyncio.ensure_future(follow()))

        async def stop(server: GeoDNSServer) -> None:
            await cancel_and_wait(tasks)
            await redis.aclose()

        def reloaded(server: GeoDNSServer) -> str | None:
            give(server)
            return None

        server.on_reload.append(reloaded)
        server.on_start.append(start)
        server.on_stop.append(stop)
        if server.http_app is not None:
            async def figures(request: web.Request) -> web.Response:
                return web.json_response({
                    "connected": follower.connected,
                    "networks": table.networks,
                    "evicted": table.evicted,
                    "figures": {net: {edge: {"ms": f.ms, "samples": f.samples}
                                      for edge, f in figs.items()}
                                for net, figs in sorted(table.snapshot().items())},
                    "regions": {net: region(server, net) for net in table.snapshot()},
                })

            server.http_app.router.add_get("/admin/latency", figures)


def region(server: GeoDNSServer, network: str) -> str:
    """Where the first steered zone locates a network ("" when none can)."""
    address = ipaddress.ip_network(network).network_address + 1
    for zone in server.zones.values():
        steering = zone.steering
        if steering is None or not steering.pools:
            continue
        pool = next(iter(steering.pools.values()))
        located = Locator(steering.nets, steering.geoip).locate(Client(address), pool.accuracy_km)
        return region_of(located)
    return ""


plugin = LatencyPlugin()
