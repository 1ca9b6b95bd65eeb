"""Every edge that `cdn up` starts has an admin token: its admin routes refuse requests
without it (loopback clients included), and a cross-site simple request (the kind a web
page can send anywhere) never drains an edge."""

from __future__ import annotations

import aiohttp


async def test_every_stack_edge_requires_its_token(stack):
    token = stack.config.admin_token
    async with aiohttp.ClientSession() as http:
        for site in stack.topology.edges:
            url = site.base_url
            async with http.post(f"{url}/admin/purge", json={"keys": ["k"]}) as r:
                assert r.status == 401, (site.name, await r.text())
            # A page on another site posting a form-like body: refused, nothing changes.
            async with http.post(f"{url}/admin/drain", data='{"draining": true}',
                                 headers={"Content-Type": "text/plain",
                                          "Origin": "http://attacker.test"}) as r:
                assert r.status in (401, 403, 415), (site.name, r.status)
            async with http.get(f"{url}/health") as r:
                assert (await r.json())["status"] != "draining", site.name
            async with http.post(f"{url}/admin/purge", json={"keys": ["k"]},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, (site.name, await r.text())
