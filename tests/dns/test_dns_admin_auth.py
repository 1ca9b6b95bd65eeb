"""The admin writes of a server with a token need it in an Authorization header: a
reload without it is refused (401, 403 with a wrong one), and no cross-site "simple"
request, the kind any web page can make a visitor's browser send (a form or text/plain
POST), changes anything, with or without the browser's cross-site markers."""

from __future__ import annotations

import aiohttp
import pytest
from dnstest import ADMIN, start_geodns, zones_copy

CROSS_SITE = {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site",
              "Sec-Fetch-Mode": "no-cors"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin")
    s = start_geodns(zones_copy(tmp), tmp)
    yield s
    s.stop()


async def reloads(http: aiohttp.ClientSession, server) -> str:
    async with http.get(server.http + "/metrics") as resp:
        return "\n".join(line for line in (await resp.text()).splitlines()
                         if line.startswith("geodns_reloads_total"))


async def test_reload_needs_the_token(server):
    async with aiohttp.ClientSession() as http:
        before = await reloads(http, server)
        async with http.post(server.http + "/admin/reload") as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        async with http.post(server.http + "/admin/reload",
                             headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 403 and "wrong admin token" in (await resp.json())["error"]
        assert await reloads(http, server) == before  # nothing was reloaded
        async with http.post(server.http + "/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 200 and (await resp.json())["ok"]
        assert await reloads(http, server) != before


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", "x"), ("application/x-www-form-urlencoded", "a=b"),
    ("multipart/form-data; boundary=x", "--x--"),
])
async def test_cross_site_simple_requests_change_nothing(server, content_type, body):
    async with aiohttp.ClientSession() as http:
        before = await reloads(http, server)
        for marks, refused in ((CROSS_SITE, 403), ({}, 415)):  # an old browser: no marks
            headers = {**marks, "Content-Type": content_type}
            async with http.post(server.http + "/admin/reload", data=body,
                                 headers=headers) as resp:
                assert resp.status == refused
            async with http.post(server.http + "/admin/overrides/member/edges/tokyo",
                                 data=body, headers=headers) as resp:
                assert resp.status in (refused, 405)  # overrides are written with PUT only
            async with http.put(server.http + "/admin/overrides/member/edges/tokyo",
                                data=body, headers=headers) as resp:
                assert resp.status == refused
        async with http.get(server.http + "/admin/overrides") as resp:
            assert (await resp.json())["overrides"] == []
        assert await reloads(http, server) == before
        # The preflight a browser sends before a request with Authorization is not
        # granted: no CORS headers, so the browser never sends the real request.
        async with http.options(server.http + "/admin/reload", headers={
                **CROSS_SITE, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization"}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
