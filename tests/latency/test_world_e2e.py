"""End to end in the latency world: clients in several cities resolve `edge.world.test`
through a real `geodns serve`, call the edge they were given through its delay relay,
and beacon. Seoul's nearest edge (Tokyo) sits behind a congested route: its answer
must move to a faster edge, and no other city's answer may move."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

from cdn.world import CONGESTED, World
from cdn.world_stack import WorldStack

CITIES = ("Seoul", "Tokyo", "London", "Paris", "New York")


@pytest.mark.timeout(600)
async def test_answers_move_for_the_anomaly_city_only(tmp_path, redis_server) -> None:
    world = World(scale=0.25, anomalies=[CONGESTED])
    world.cities = tuple(c for c in world.cities if c.name in CITIES)
    async with WorldStack(world, tmp_path, redis_server.url, ttl=2) as stack:
        clients = [stack.client(city, i) for city in CITIES for i in range(2)]
        for c in clients:  # time alternates on every beacon, so a test run is short
            c.sample_rate, c.alternates = 1.0, 3
        geo = {city: stack.edge_name(await stack.client(city, 5).resolve("geo"))
               for city in CITIES}
        assert geo == {c: world.nearest_edge(c) for c in CITIES}
        assert geo["Seoul"] == "tokyo"

        async def round_of_visits() -> None:
            # One client at a time: the whole world shares this process's event loop,
            # and clients timing at once would time each other's work.
            for c in clients:
                await c.visit()

        async def seoul_answer() -> str:
            return stack.edge_name(await stack.client("Seoul", 6).resolve("edge"))

        fast = world.best_edge("Seoul")
        assert fast != "tokyo"
        deadline = time.monotonic() + 90
        while await seoul_answer() != fast and time.monotonic() < deadline:
            await round_of_visits()
        assert await seoul_answer() == fast, await stack.figures()

        for _ in range(3):  # a few more rounds: the other cities' answers hold still
            await round_of_visits()
        figures = (await stack.figures())["figures"]
        for city in CITIES[1:]:
            net = str(world.city_network(city))
            assert net in figures, f"{city} has no figures"
            got = stack.edge_name(await stack.client(city, 7).resolve("edge"))
            assert got == geo[city], (city, figures[net])
        async with aiohttp.ClientSession() as s, \
                s.get(f"http://127.0.0.1:{stack.http_port}/metrics") as r:
            metrics = await r.text()
        tracked = re.search(r"^geodns_latency_networks (\S+)$", metrics, re.M)
        assert tracked and float(tracked.group(1)) == len(CITIES), metrics
        # Seoul's own clients, resolving again when their TTL ran out, went there too.
        await asyncio.sleep(2.5)
        assert (await clients[0].visit())["edge"] == fast
