"""The `geodns serve` plugin (entry point `geodns.plugins: dashboard`): mounts the live
dashboard on the admin HTTP port (see `geodns.dashboard`).

It reads the members' health through the health plugin's own API, GET /admin/health on
this same port (so it shows exactly what operators and scripts see); without health
checking (``--no-health``) every member shows as the server steers by it: up, not
probed. Member places come from the zones being served, so a reload shows at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geodns.plugins import Plugin

if TYPE_CHECKING:
    from geodns.server import GeoDNSServer

from typing import Any

import aiohttp

from geodns.dashboard import DashboardSources, Place, add_dashboard_routes


def places(server: GeoDNSServer) -> list[Place]:
    out = []
    for origin, zone in sorted(server.zones.items()):
        if zone.steering is None:
            continue
        for pool in zone.steering.pools.values():
            for m in pool.members:
                address = (m.ipv4 or m.ipv6 or ("",))[0]
                out.append(Place(origin, pool.name, m.name, address, m.lat, m.lon))
    return out


def unprobed_rows(server: GeoDNSServer) -> list[dict[str, Any]]:
    """Rows in the health service's shape for when no health checking runs."""
    return [
        {"zone": p.zone, "pool": p.pool, "member": p.member, "target": None,
         "status": "up", "reason": "not probed (health checking is off)", "since": None,
         "load": None, "hit_rate": None, "latency_ms": None, "override": None,
         "changing": False}
        for p in places(server)
    ]


def self_address(host: str, port: int) -> str:
    """How this process reaches its own admin port (a wildcard bind means loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DashboardPlugin(Plugin):
    def setup(self, server: GeoDNSServer) -> None:
        http = server.config.http
        if server.http_app is None or http is None:  # a worker process: no HTTP port
            return
        from geodns.admin import counters

        url = f"http://{self_address(*http)}/admin/health"

        async def health_rows(session: aiohttp.ClientSession) -> list[dict[str, Any]]:
            async with session.get(url) as resp:
                if resp.status == 404:
                    return unprobed_rows(server)
                resp.raise_for_status()
                return (await resp.json())["members"]

        add_dashboard_routes(server.http_app, DashboardSources(
            health_rows=health_rows, places=lambda: places(server),
            registry=lambda: counters(server),
        ))


plugin = DashboardPlugin()
