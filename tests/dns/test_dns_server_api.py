"""The server started from code, with a plugin using the documented hooks: HTTP
routes, start/stop hooks, reload hooks and the health view handed to every zone."""

from __future__ import annotations

import aiohttp
import dns.asyncquery
import dns.message
from aiohttp import web
from dnstest import zones_copy

from cdn.redis_server import free_port
from geodns.plugins import Plugin as GeoDNSPlugin
from geodns.server import GeoDNSServer, ServerConfig
from geodns.steering.health import MemberHealth


class View:
    generation = 41

    def get(self, pool: str, member: str) -> MemberHealth:
        return MemberHealth()


class Plugin(GeoDNSPlugin):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.view = View()

    def setup(self, server: GeoDNSServer) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"zones": sorted(server.zones)})

        async def started(s: GeoDNSServer) -> None:
            self.events.append("start")

        async def stopping(s: GeoDNSServer) -> None:
            self.events.append("stop")

        server.http_app.router.add_get("/hello", hello)
        server.on_start.append(started)
        server.on_stop.append(stopping)
        server.on_reload.append(lambda s: self.events.append("reload"))
        server.set_health(self.view)


async def test_server_from_code_with_a_plugin(tmp_path):
    plugin = Plugin()
    port, http_port = free_port(), free_port()
    config = ServerConfig(zones_dir=zones_copy(tmp_path), listen=[("127.0.0.1", port)],
                          http=("127.0.0.1", http_port), nsid="api-test", plugins=[plugin])
    server = GeoDNSServer(config)
    await server.start()
    try:
        assert plugin.events == ["start"]
        steered = [z.steering for z in server.zones.values() if z.steering is not None]
        assert steered and all(s.health is plugin.view for s in steered)
        q = dns.message.make_query("www.cdn.example", "A")
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=30)
        assert {x.to_text() for x in r.answer[0]} == {"192.0.2.10", "192.0.2.11"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{http_port}/hello") as resp:
                assert (await resp.json())["zones"] == ["cdn.example.", "test.example."]
        result = await server.reload()
        assert result.ok and plugin.events == ["start", "reload"]
        steered = [z.steering for z in server.zones.values() if z.steering is not None]
        assert all(s.health is plugin.view for s in steered)  # handed on after reload
    finally:
        await server.stop()
    assert plugin.events == ["start", "reload", "stop"]
