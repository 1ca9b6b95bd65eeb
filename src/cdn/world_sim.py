"""`cdn simulate --world`: the simulator's clients in the latency world (`cdn.world`).

Clients in every city of the world call an edge: first all of them the origin (placed
in Virginia: `ORIGIN`), then the edge geo steering gives them (`geo.world.test`), then
the edge latency steering gives them (`edge.world.test`), each for the same time. A
request is a GET of a small object on a kept-alive connection through the world's
relays, so its time is the route's round trip plus the edge's work. Every client
beacons at the default rate throughout (and during a warm-up before the first phase),
as real clients would. The report gives per-region p50/p95/p99 for the three in one
table, and one plot of them.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdn.beacon import DEFAULT_INTERVAL_S
from cdn.redis_server import RedisServer
from cdn.world import World
from cdn.world_stack import WorldClient, WorldStack

ORIGIN = "virginia"
MODES = ("origin", "geo", "latency")


@dataclass(frozen=True)
class WorldSample:
    mode: str
    city: str
    edge: str
    ms: float


async def _client(c: WorldClient, mode: str, until: float, out: list[WorldSample]) -> None:
    stack = c.stack
    next_beacon = 0.0
    assert c.session is not None
    while time.monotonic() < until:
        try:
            if mode == "origin":
                address = stack.world.edge_address(ORIGIN)
            else:
                address = await c.resolve("geo" if mode == "geo" else "edge")
            url = f"http://{address}:{stack.port}/latency/object"
            async with c.session.get(url) as r:  # keeps the connection warm
                await r.read()
            start = time.perf_counter()
            async with c.session.get(url) as r:
                await r.read()
            out.append(WorldSample(mode, c.city, stack.edge_name(address),
                                   (time.perf_counter() - start) * 1000))
            if time.monotonic() >= next_beacon:
                c.edge, c.expires = None, 0.0
                await c.visit()
                next_beacon = time.monotonic() + DEFAULT_INTERVAL_S
        except (OSError, asyncio.TimeoutError) as e:  # noqa: UP041 - aiohttp raises both
            print(f"  {c.city}: {type(e).__name__}: {e}")
        await asyncio.sleep(c.rng.uniform(0.2, 0.6))


async def run_world(seconds: float, warmup: float, clients_per_city: int,
                    world: World | None = None) -> list[WorldSample]:
    world = world or World()
    redis = RedisServer().start()
    samples: list[WorldSample] = []
    try:
        async with WorldStack(world, Path(tempfile.mkdtemp(prefix="simulate-world-")),
                              redis.url, in_process=True) as stack:
            clients = [stack.client(c.name, i) for c in world.cities
                       for i in range(clients_per_city)]
            for c in clients:
                await c.visit()  # opens its session
            warm: list[WorldSample] = []
            until = time.monotonic() + warmup
            await asyncio.gather(*(_client(c, "geo", until, warm) for c in clients))
            for mode in MODES:
                until = time.monotonic() + seconds
                await asyncio.gather(*(_client(c, mode, until, samples) for c in clients))
    finally:
        redis.stop()
    return samples


def percentiles(samples: list[WorldSample]) -> dict[tuple[str, str], tuple[float, ...]]:
    """(city, mode) -> (p50, p95, p99, count)."""
    by: dict[tuple[str, str], list[float]] = {}
    for s in samples:
        by.setdefault((s.city, s.mode), []).append(s.ms)
    return {k: (*np.percentile(v, [50, 95, 99]).tolist(), len(v)) for k, v in by.items()}


def world_table(samples: list[WorldSample]) -> str:
    p = percentiles(samples)
    cities = list(dict.fromkeys(s.city for s in samples))
    head = f"{'region':14}" + "".join(f" {m + ' p50/p95/p99 ms':>26}" for m in MODES)
    lines = [head]
    for city in cities:
        cells = []
        for m in MODES:
            v = p.get((city, m))
            cells.append(f" {'-':>26}" if v is None else
                         f" {f'{v[0]:.0f} / {v[1]:.0f} / {v[2]:.0f}':>26}")
        lines.append(f"{city:14}" + "".join(cells))
    for m in MODES:
        all_ms = [s.ms for s in samples if s.mode == m]
        if all_ms:
            q = np.percentile(all_ms, [50, 95, 99])
            lines.append(f"{'all (' + m + ')':14} {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} ms "
                         f"({len(all_ms)} requests)")
    return "\n".join(lines)


def plot_world(samples: list[WorldSample], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = percentiles(samples)
    cities = list(dict.fromkeys(s.city for s in samples))
    x = np.arange(len(cities))
    fig, ax = plt.subplots(figsize=(12, 4.5), constrained_layout=True)
    colors = {"origin": "#b0b0b0", "geo": "#4c78a8", "latency": "#f58518"}
    for i, m in enumerate(MODES):
        p50 = [p.get((c, m), (np.nan,) * 4)[0] for c in cities]
        p95 = [p.get((c, m), (np.nan,) * 4)[1] for c in cities]
        err = [np.zeros(len(cities)), np.array(p95) - np.array(p50)]
        ax.bar(x + (i - 1) * 0.27, p50, 0.27, yerr=err, capsize=2, label=m, color=colors[m])
    ax.set_xticks(x, cities, rotation=30, ha="right")
    ax.set_ylabel("request time, ms (bar p50, whisker p95)")
    ax.set_title("Every client to the origin (Virginia), to the nearest edge (geo), "
                 "to the latency-steered edge")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
