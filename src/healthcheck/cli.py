"""`healthcheck`: a standalone checker publishing its probe results to Redis.

Run one per vantage point; every `geodns serve --redis URL` combines their votes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from geocdn.auth import TokenError, add_token_option, read_token
from geocdn.hostport import host_port_type
from geocdn.urls import redacted
from healthcheck.admin import add_health_routes
from healthcheck.service import HealthService
from healthcheck.zonefiles import ZoneProblems, load_pools

log = logging.getLogger("healthcheck")
TOKEN_ENV = "GEODNS_ADMIN_TOKEN"  # the DNS servers' too: one admin token for health overrides


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="healthcheck",
        description="Probe every pool member of the zones and publish the results to Redis.",
    )
    p.add_argument("--zones", required=True, help="directory of zone files (*.yaml)")
    p.add_argument("--redis", required=True, help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--vantage", required=True, help="this checker's vantage point name")
    p.add_argument("--overrides", help="override file, shared with the DNS servers via Redis")
    p.add_argument("--http", metavar="HOST:PORT", type=host_port_type(),
                   help="serve /metrics and /admin/health here (e.g. 127.0.0.1:9400)")
    add_token_option(p, TOKEN_ENV, "for PUT/DELETE /admin/overrides")
    p.add_argument("--quorum", type=int, help="vantage votes to call a member down "
                   "(default: a majority of the live vantage points)")
    p.add_argument("--redis-prefix", default="geocdn:health", help="Redis key prefix")
    p.add_argument("--max-concurrent", type=int, default=32, help="probes in flight at most")
    p.add_argument("--log-level", default="INFO")
    return p


async def run(args: argparse.Namespace) -> None:
    token = read_token(args.admin_token_file, TOKEN_ENV)
    pools = load_pools(args.zones)
    service = HealthService(
        pools, redis_url=args.redis, vantage=args.vantage,
        overrides_path=args.overrides, quorum=args.quorum, redis_prefix=args.redis_prefix,
        max_concurrent=args.max_concurrent, admin_token=token,
    )
    await service.start()
    runner = None
    if args.http:
        host, port = args.http
        app = web.Application()
        add_health_routes(app, service, token)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(), headers={"Content-Type":
                                                                  CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload() -> None:
        log.info("healthcheck: SIGHUP: reloading zones and overrides")
        nonlocal pools
        pools = load_pools(args.zones, pools)
        service.update_targets(pools)
        service.reload_overrides()

    loop.add_signal_handler(signal.SIGHUP, reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("healthcheck: vantage %s publishing to %s", args.vantage, redacted(args.redis))
    await stop.wait()
    if runner is not None:
        await runner.cleanup()
    await service.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s healthcheck[%(process)d]: %(message)s")
    try:
        asyncio.run(run(args))
    except (ZoneProblems, TokenError) as exc:
        log.error("%s; not starting", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
