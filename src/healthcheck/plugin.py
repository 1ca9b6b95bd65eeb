"""The `geodns serve` plugin (entry point `geodns.plugins: health`): health checking
inside the DNS server.

Adds to `geodns serve`: ``--redis URL``, ``--vantage NAME``, ``--overrides FILE``,
``--health-quorum N`` and ``--no-health``. In every server process it runs a
`HealthService` for the served zones' pools, hands each zone's steering its view
(again after every reload), re-reads the override file on reload, and mounts the
admin routes (`healthcheck.admin`) on the admin HTTP port.

With ``--workers N`` only the parent (the supervisor, which serves the admin port)
probes, combines the Redis votes, applies the overrides and publishes as ``--vantage``;
the workers answer from its verdicts (`healthcheck.follow`), so each target gets one
probe per interval and every process answers the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geocdn.tasks import cancel_and_wait
from geodns.plugins import Plugin

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer, ServerConfig

import argparse
import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from healthcheck.admin import add_health_routes
from healthcheck.follow import Follower, publish
from healthcheck.service import HealthService


@dataclass
class HealthOptions:
    enabled: bool = True
    redis: str | None = None
    vantage: str | None = None
    overrides: str | None = None
    quorum: int | None = None
    run_dir: str | None = None  # with workers: this run's private folder (the parent's
    # verdicts for the workers, and the override file when --overrides is not given)

    @property
    def verdicts(self) -> Path | None:
        return Path(self.run_dir) / "health.json" if self.run_dir else None


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
        overrides, run_dir = args.overrides, None
        if config.workers > 1:
            # Configured before the workers fork, so every process gets these paths.
            run_dir = tempfile.mkdtemp(prefix="geodns-health-")
            overrides = overrides or str(Path(run_dir) / "overrides.yaml")
        config.extra["health"] = HealthOptions(
            enabled=not args.no_health, redis=args.redis, vantage=args.vantage,
            overrides=overrides, quorum=args.health_quorum, run_dir=run_dir,
        )

    def setup(self, server: GeoDNSServer) -> None:
        opts: HealthOptions = server.config.extra.get("health") or HealthOptions()
        if not opts.enabled:
            return
        if server.role == "worker" and opts.verdicts is not None:
            follow_parent(server, Follower(opts.verdicts))
            return
        service = HealthService(
            redis_url=opts.redis,
            vantage=opts.vantage if server.role != "worker" else None,
            overrides_path=opts.overrides,
            quorum=opts.quorum,
            admin_token=server.config.admin_token,
        )

        def follow_zones(server: GeoDNSServer) -> None:
            steered = {o: z.steering for o, z in server.zones.items() if z.steering is not None}
            service.update_targets({o: s.pools for o, s in steered.items()})
            for origin, steering in steered.items():
                steering.set_health(service.view_for(origin))
            service.reload_overrides()

        tasks: list[asyncio.Task] = []

        async def start(server: GeoDNSServer) -> None:
            follow_zones(server)
            await service.start()
            if opts.verdicts is not None:
                tasks.append(asyncio.create_task(publish(service, opts.verdicts)))

        async def stop(server: GeoDNSServer) -> None:
            await cancel(tasks)
            await service.stop()
            if opts.run_dir is not None:
                shutil.rmtree(opts.run_dir, ignore_errors=True)

        # Every zone gets the service-wide view at once (so no answer is ever given
        # before states settle); start and each reload then give each zone its own.
        server.set_health(service.view)
        server.on_reload.append(follow_zones)
        server.on_start.append(start)
        server.on_stop.append(stop)
        if server.http_app is not None:
            add_health_routes(server.http_app, service, server.config.admin_token)


def follow_parent(server: GeoDNSServer, follower: Follower) -> None:
    """A worker: every zone steers by the parent's verdicts; no probes, no admin."""
    tasks: list[asyncio.Task] = []

    def follow_zones(server: GeoDNSServer) -> None:
        for origin, zone in server.zones.items():
            if zone.steering is not None:
                zone.steering.set_health(follower.view_for(origin))

    async def start(server: GeoDNSServer) -> None:
        follow_zones(server)
        tasks.append(asyncio.create_task(follower.run()))

    async def stop(server: GeoDNSServer) -> None:
        await cancel(tasks)

    server.set_health(follower.view_for(None))
    server.on_reload.append(follow_zones)
    server.on_start.append(start)
    server.on_stop.append(stop)


async def cancel(tasks: list[asyncio.Task]) -> None:
    await cancel_and_wait(tasks)
    tasks.clear()


plugin = HealthPlugin()
