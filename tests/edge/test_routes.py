"""Every request to a node, matched by a route or not, is answered in JSON and counted
by route and status; a route added after the fallback would be shadowed, so it is
refused."""

from __future__ import annotations

import pytest
from aiohttp import web

from edge import routes
from edge.errors import EdgeError


async def counted(http, url: str, endpoint: str, status: int) -> float:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    line = f'edge_http_requests_total{{endpoint="{endpoint}",status="{status}"}} '
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line))


async def test_unmatched_requests_get_json_and_are_counted(start_node, models_dir, http):
    node = await start_node(models_dir=models_dir)
    for method, path, status, allow in (
            ("GET", "/v2/models/ranker/infer", 405, {"POST"}),
            ("DELETE", "/health", 405, {"GET", "HEAD"}),
            ("GET", "/no/such/route", 404, None),
            ("GET", "/no%0Aroute", 404, None),  # a newline in the decoded path
            ("POST", "/health/", 404, None)):
        async with http.request(method, node.url + path) as r:
            assert r.status == status, (method, path)
            assert r.content_type == "application/json"
            assert (await r.json())["error"]
            if allow is not None:
                assert set(r.headers["Allow"].split(",")) == allow
    async with http.head(node.url + "/health") as r:
        assert r.status == 200
    assert await counted(http, node.url, "unmatched", 405) == 2
    assert await counted(http, node.url, "unmatched", 404) == 3
    assert await counted(http, node.url, "health", 200) == 1  # the HEAD


def test_a_route_after_the_fallback_is_refused():
    app = web.Application()
    routes.add_fallback(app)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")
    with pytest.raises(EdgeError, match="after the fallback"):
        routes.add(app, "GET", "/", hello, "hello")
