"""The admin HTTP port (aiohttp): Prometheus metrics, reload, zone list, liveness.

    GET  /metrics        Prometheus text format
    POST /admin/reload   {"ok": true|false, "zones": {origin: serial}, "errors": [...]}
                         200 when everything reloaded; 422 when something was rejected:
                         a zone file (no zone swapped) or a plugin's part, such as the
                         GeoIP database (zones swapped, the previous database kept)
    GET  /admin/zones    {"zones": [{"zone", "serial", "file"}]}
    GET  /healthz        {"status": "ok"}

Writes (reload, and the plugins' admin routes) follow `geocdn.auth`'s policy with the
server's `--admin-token-file` / $GEODNS_ADMIN_TOKEN token.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from geocdn.auth import check_admin
from geodns.metrics import SCRAPED

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer


def counters(server: GeoDNSServer) -> CollectorRegistry:
    """The server's metrics, up to date (with workers: summed over every process)."""
    server.tally.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in SCRAPED:
            registry.register(collector)
        return registry
    return REGISTRY


def build_app(server: GeoDNSServer) -> web.Application:
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(counters(server))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def reload(request: web.Request) -> web.Response:
        check_admin(request, server.config.admin_token)
        result = await server.reload()
        return web.json_response(result.as_json(), status=200 if result.ok else 422)

    async def zones(request: web.Request) -> web.Response:
        return web.json_response({"zones": [
            {"zone": origin, "serial": zone.serial, "file": zone.path}
            for origin, zone in sorted(server.zones.items())]})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/metrics", metrics)
    app.router.add_post("/admin/reload", reload)
    app.router.add_get("/admin/zones", zones)
    app.router.add_get("/healthz", healthz)
    return app
