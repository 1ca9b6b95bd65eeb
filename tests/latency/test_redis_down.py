"""With the latency Redis gone, a DNS server steers by the figures it holds until they
expire, then by distance again; with no measurements its answers are geo steering's."""

from __future__ import annotations

import asyncio
import time

import pytest

from cdn.world import CONGESTED, World
from cdn.world_stack import WorldStack

CITIES = ("Seoul", "Tokyo", "London")


async def until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.5)
    return False


@pytest.mark.timeout(600)
async def test_no_measurements_then_local_figures_then_geo(tmp_path, redis_server) -> None:
    world = World(scale=0.25, anomalies=[CONGESTED])
    world.cities = tuple(c for c in world.cities if c.name in CITIES)
    stack = WorldStack(world, tmp_path, redis_server.url, ttl=1,
                       geodns_args=("--no-health", "--latency-expiry", "20"))
    async with stack:
        probe = {city: stack.client(city, 9) for city in CITIES}

        async def answers(name: str) -> dict[str, str]:
            out = {}
            for city, c in probe.items():
                c.edge = None
                out[city] = stack.edge_name(await c.resolve(name))
            return out

        # No measurements yet: latency steering answers what geo steering does.
        assert await answers("edge") == await answers("geo")

        seoul = [stack.client("Seoul", i) for i in range(2)]
        for c in seoul:
            c.sample_rate, c.alternates = 1.0, 3
        fast = world.best_edge("Seoul")

        async def moved() -> bool:
            for c in seoul:
                await c.visit()
            return (await answers("edge"))["Seoul"] == fast

        assert await until(moved, 90), await stack.figures()

        redis_server.stop()
        # The server keeps the figures it holds (and says it lost Redis) ...
        async def disconnected() -> bool:
            return not (await stack.figures())["connected"]

        assert await until(disconnected, 20)
        assert (await answers("edge"))["Seoul"] == fast
        # ... until they expire; then Seoul is steered by distance again.
        async def back_to_geo() -> bool:
            return await answers("edge") == await answers("geo")

        assert await until(back_to_geo, 60)
        assert (await answers("edge"))["Seoul"] == "tokyo"
