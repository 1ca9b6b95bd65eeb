"""The `geodns serve` plugin (entry point `geodns.plugins: health`): health checking
inside the DNS server.

Adds to `geodns serve`: ``--redis URL``, ``--vantage NAME``, ``--overrides FILE``,
``--health-quorum N`` and ``--no-health``. In every server process it runs a
`HealthService` for the served zones' pools, hands each zone's steering its view
(again after every reload), re-reads the override file on reload, and mounts the
admin routes (`healthcheck.admin`) on the admin HTTP port.

With ``--workers N`` every worker probes by itself (answers never wait on another
process); only the supervisor, which serves the admin port, publishes to Redis as
``--vantage``. Overrides set through the API reach the workers through the override
file, which every process watches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geodns.plugins import Plugin

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer, ServerConfig

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from healthcheck.admin import add_health_routes
from healthcheck.service import HealthService


@dataclass
class HealthOptions:
    enabled: bool = True
    redis: str | None = None
    vantage: str | None = None
    overrides: str | None = None
    quorum: int | None = None
    private_overrides: bool = False  # the override file is this run's own (workers)


class HealthPlugin(Plugin):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("health checking")
        g.add_argument("--redis", metavar="URL",
                       help="share probe results over this Redis (checkers publish, "
                       "every server combines); default: probe locally only")
        g.add_argument("--vantage", metavar="NAME",
                       help="publish this server's own probe results to Redis under NAME")
        g.add_argument("--overrides", metavar="FILE",
                       help="health override file (YAML), also written by the admin API")
        g.add_argument("--health-quorum", type=int, metavar="N",
                       help="vantage points that must say down (default: a majority)")
        g.add_argument("--no-health", action="store_true",
                       help="no health checking: every member counts as up")

    def configure(self, args: argparse.Namespace, config: ServerConfig) -> None:
        overrides, private = args.overrides, False
        if overrides is None and config.workers > 1:
            # Configured before the workers fork, so every process gets this path.
            overrides = str(Path(tempfile.mkdtemp(prefix="geodns-overrides-")) / "overrides.yaml")
            private = True
        config.extra["health"] = HealthOptions(
            enabled=not args.no_health, redis=args.redis, vantage=args.vantage,
            overrides=overrides, quorum=args.health_quorum,
            private_overrides=private,
        )

    def setup(self, server: GeoDNSServer) -> None:
        opts: HealthOptions = server.config.extra.get("health") or HealthOptions()
        if not opts.enabled:
            return
        service = HealthService(
            redis_url=opts.redis,
            vantage=opts.vantage if server.role != "worker" else None,
            overrides_path=opts.overrides,
            quorum=opts.quorum,
        )

        def follow_zones(server: GeoDNSServer) -> None:
            steered = {o: z.steering for o, z in server.zones.items() if z.steering is not None}
            service.update_targets({o: s.pools for o, s in steered.items()})
            for origin, steering in steered.items():
                steering.set_health(service.view_for(origin))
            service.reload_overrides()

        async def start(server: GeoDNSServer) -> None:
            follow_zones(server)
            await service.start()

        async def stop(server: GeoDNSServer) -> None:
            await service.stop()
            if opts.private_overrides and opts.overrides and server.role != "worker":
                shutil.rmtree(Path(opts.overrides).parent, ignore_errors=True)

        # Every zone gets the service-wide view at once (so no answer is ever given
        # before states settle); start and each reload then give each zone its own.
        server.set_health(service.view)
        server.on_reload.append(follow_zones)
        server.on_start.append(start)
        server.on_stop.append(stop)
        if server.http_app is not None:
            add_health_routes(server.http_app, service, server.config.admin_token)


plugin = HealthPlugin()
