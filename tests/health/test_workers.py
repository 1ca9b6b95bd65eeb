"""`geodns serve --workers 2`: only the parent probes (one probe per target per
interval, counted at the target), and every worker answers as the parent decides."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
from health_members import MemberServer, late_between, loopback_address, wait_for
from health_stack import CITIES, NAME, GeoDNS, ask, client_net, until, write_zone
from test_dns_failover import admin_port_up

from geodns.steering.health_settings import DEFAULTS as D
from healthcheck.lag import LoopLag

PROBES = 12  # probes counted at each member (about 8 s worth)


async def parent_answer(http: aiohttp.ClientSession, port: int, city: str) -> tuple:
    """The parent's decision for the client in `city` (its admin explain)."""
    url = f"http://127.0.0.1:{port}/admin/explain"
    async with http.get(url, params={"name": NAME, "ecs": f"{client_net(city)}/24"}) as r:
        doc = await r.json()
        assert r.status == 200, doc
    return tuple(sorted(doc["addresses"])), doc["ttl"]


async def worker_answers(port: int, city: str, n: int = 30) -> set[tuple]:
    """What `n` questions get (random source ports spread them over the workers)."""
    replies = [await ask(port, city, timeout=60) for _ in range(n)]
    return {(r.addresses, r.ttl) for r in replies}


async def assert_workers_answer_as_the_parent(http, server: GeoDNS, city: str) -> None:
    """Every worker answers what the parent decides, once it has polled the parent's
    verdicts. On a busy machine a probe may fail now and then (the member's state is
    then changing: short TTL for a moment), so a comparison counts only when the
    parent decided the same before and after the questions."""
    deadline = asyncio.get_running_loop().time() + 120  # bounds a hang only
    while True:
        before = await parent_answer(http, server.http_port, city)
        answers = await worker_answers(server.port, city)
        if answers == {before} and await parent_answer(http, server.http_port, city) == before:
            return
        assert asyncio.get_running_loop().time() < deadline, (city, before, answers)
        await asyncio.sleep(0.05)


async def test_workers_probe_once_and_answer_as_the_parent(tmp_path):
    members = {name: await MemberServer(loopback_address(73)).start() for name in CITIES}
    write_zone(tmp_path / "zones", members)
    server = GeoDNS(tmp_path / "zones", args=["--workers", "2"],
                    log=tmp_path / "geodns.log").start()
    ip = {name: s.host for name, s in members.items()}
    try:
        await until(server.port, "london", lambda r: r.addresses == (ip["london"],), 60)
        await admin_port_up(server.http_port, 60)

        # One prober: at most one probe per jittered interval reaches each member, and
        # no two come closer than half the shortest interval (three probing processes
        # would send three per interval, often close together).
        # This process's own stalls (it serves the members) delay an arrival, and so
        # shorten the next gap: LoopLag measures them, and the bound allows exactly that.
        lag = LoopLag()
        watching = asyncio.create_task(lag.run())
        loop = asyncio.get_running_loop()
        for s in members.values():
            s.probe_times.clear()
        began = loop.time()
        await wait_for(lambda: all(len(s.probe_times) >= PROBES for s in members.values()),
                       120)
        window = loop.time() - began
        watching.cancel()
        shortest = D.interval * (1 - D.jitter)
        for name, s in members.items():
            times = list(s.probe_times)
            # (+2: one probe may have been sent before the window and arrived in it)
            assert len(times) <= window / shortest + 2, (name, window, times)
            for a, b in itertools.pairwise(times):
                allowed = shortest / 2 - late_between(lag, a - D.timeout, b)
                assert b - a > allowed, (name, times)

        async with aiohttp.ClientSession() as http:
            for city in CITIES:
                await assert_workers_answer_as_the_parent(http, server, city)

            # A member dies: once the parent has seen it, every worker answers its
            # verdict (short TTL for the London client, long for the others).
            await members["london"].stop()
            while (await parent_answer(http, server.http_port, "london"))[0] == (ip["london"],):
                await asyncio.sleep(0.05)
            await until(server.port, "london", lambda r: r.addresses == (ip["paris"],), 60)
            for city in CITIES:
                await assert_workers_answer_as_the_parent(http, server, city)
            assert await worker_answers(server.port, "london") == {
                ((ip["paris"],), D.min_ttl)}
    finally:
        server.stop()
        for s in members.values():
            await s.stop()
