"""Latency steering against geo steering and the oracle, in the latency world.

Runs the world at real scale (`cdn.world`: 12 cities, the 7 example edges, delay relays
from great-circle distance; Seoul's nearest edge behind a congested route, +150 ms for
good; Madrid's nearest congesting by +100 ms from --appear to --clear seconds), with
CLIENTS clients per city that resolve `edge.world.test` through `geodns serve
--latency-redis`, call their edge and beacon at the default rate (one beacon per
client every `cdn.beacon.DEFAULT_INTERVAL_S`). Prints per city the round-trip time
(the world's, without jitter) to the edge geo steering picks (`geo.world.test`, the
same pool without the `latency` filter), to the edge latency steering picks, and to
the best edge; the medians; the checks; and how long steering took to follow the
transient anomaly when it appeared and when it cleared.

    .venv/bin/python bench/latency_world.py [--clients 3] [--appear 150] [--clear 300] [--end 450]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from dns.exception import DNSException

from cdn.beacon import DEFAULT_INTERVAL_S
from cdn.redis_server import RedisServer
from cdn.world import CONGESTED, Anomaly, World
from cdn.world_stack import WorldClient, WorldStack

PROBE_EVERY_S = 2.0


async def client_loop(c: WorldClient, stop: asyncio.Event) -> None:
    await asyncio.sleep(c.rng.uniform(0, DEFAULT_INTERVAL_S))  # spread the clients out
    while not stop.is_set():
        try:
            await c.visit()
        except Exception as e:  # noqa: BLE001 - a failed visit is reported, not fatal
            print(f"  {c.city} {c.address}: {type(e).__name__}: {e}")
        await asyncio.sleep(DEFAULT_INTERVAL_S * c.rng.uniform(0.8, 1.2))


async def ask(c: WorldClient, name: str) -> str:
    """The edge `name` gives the client now, asked afresh (a lost datagram is asked again)."""
    for attempt in range(5):
        c.edge = None
        try:
            return c.stack.edge_name(await c.resolve(name))
        except DNSException:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


async def choices(stack: WorldStack, probes: dict[str, WorldClient]) -> dict[str, tuple[str, str]]:
    """(geo, latency) edge names per city."""
    return {city: (await ask(c, "geo"), await ask(c, "edge")) for city, c in probes.items()}


def table(world: World, picks: dict[str, tuple[str, str]], t: float) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"geo": [], "latency": [], "oracle": []}
    print(f"{'city':14} {'geo edge':>10} {'RTT':>7} {'latency edge':>13} {'RTT':>7} "
          f"{'best edge':>10} {'RTT':>7}")
    for city, (geo, lat) in picks.items():
        best = world.best_edge(city, t)
        g, la, o = (world.rtt_ms(city, e, t) for e in (geo, lat, best))
        rows["geo"].append(g)
        rows["latency"].append(la)
        rows["oracle"].append(o)
        mark = " *" if any(a.city == city and a.active(t) for a in world.anomalies) else ""
        print(f"{city + mark:14} {geo:>10} {g:7.1f} {lat:>13} {la:7.1f} {best:>10} {o:7.1f}")
    return rows


def verdict(world: World, picks: dict[str, tuple[str, str]], rows: dict[str, list[float]],
            t: float) -> None:
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"median RTT: geo {med['geo']:.1f} ms, latency {med['latency']:.1f} ms, "
          f"oracle {med['oracle']:.1f} ms (* = anomaly active)")
    ok_median = med["latency"] <= med["oracle"] * 1.05
    anomalous = {a.city for a in world.anomalies if a.active(t)}
    better = all(world.rtt_ms(c, picks[c][1], t) < world.rtt_ms(c, picks[c][0], t)
                 for c in anomalous)
    no_worse = all(world.rtt_ms(c, lat, t) <= world.rtt_ms(c, geo, t) * 1.05
                   for c, (geo, lat) in picks.items() if c not in anomalous)
    print(f"  latency median within 5% of the oracle's: {'yes' if ok_median else 'NO'}")
    print(f"  strictly better than geo on the anomaly cities: {'yes' if better else 'NO'}")
    print(f"  never worse than geo by more than 5% elsewhere: {'yes' if no_worse else 'NO'}")


async def run(args: argparse.Namespace) -> None:
    transient = Anomaly("Madrid", "london", 100.0, args.appear, args.clear)
    world = World(anomalies=[CONGESTED, transient], scale=args.scale)
    redis = RedisServer().start()
    try:
        async with WorldStack(world, Path(tempfile.mkdtemp(prefix="latency-world-")),
                              redis.url, ttl=args.ttl, in_process=True) as stack:
            clients = [stack.client(c.name, i) for c in world.cities for i in range(args.clients)]
            probes = {c.name: stack.client(c.name, 99) for c in world.cities}
            stop = asyncio.Event()
            loops = [asyncio.ensure_future(client_loop(c, stop)) for c in clients]
            print(f"{len(clients)} clients in {len(world.cities)} cities, a beacon per client "
                  f"every {DEFAULT_INTERVAL_S:g} s; Seoul->tokyo +150 ms for good, "
                  f"Madrid->london +100 ms from {args.appear:g} s to {args.clear:g} s")
            madrid: list[tuple[float, str]] = []
            snapshots = [(args.appear, "before Madrid's anomaly"),
                         (args.clear, "Madrid's anomaly active")]
            while world.now() < args.end:
                t = world.now()
                picks = await choices(stack, probes)
                madrid.append((t, picks["Madrid"][1]))
                if snapshots and t >= snapshots[0][0] - 2 * PROBE_EVERY_S:
                    print(f"\n-- at {t:.0f} s ({snapshots.pop(0)[1]}) --")
                    verdict(world, picks, table(world, picks, t), t)
                await asyncio.sleep(PROBE_EVERY_S)
            t = world.now()
            picks = await choices(stack, probes)
            print(f"\n-- at {t:.0f} s (Seoul's congestion only) --")
            verdict(world, picks, table(world, picks, t), t)
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)

            def follow(after: float, until: float, edge: str) -> str:
                """From `after`, how long until the answer was `edge` and stayed so."""
                phase = [(w, p) for w, p in madrid if after <= w < until]
                since = None
                for when, picked in phase:
                    since = (since or when) if picked == edge else None
                return "never" if since is None else f"{since - after:.0f} s"

            during = world.best_edge("Madrid", (args.appear + args.clear) / 2)
            print(f"\nMadrid: anomaly appeared at {args.appear:g} s; answers moved to {during} "
                  f"after {follow(args.appear, args.clear, during)}; "
                  f"cleared at {args.clear:g} s; answers "
                  f"back on london after {follow(args.clear, args.end + 60, 'london')} "
                  f"(answer TTL {args.ttl} s, probed every {PROBE_EVERY_S:g} s)")
            fig = await stack.figures()
            print(f"figures: {fig['networks']} networks tracked, {fig['evicted']} evicted")
    finally:
        redis.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=3, help="clients per city (default 3)")
    p.add_argument("--appear", type=float, default=150.0, help="Madrid's anomaly starts (s)")
    p.add_argument("--clear", type=float, default=300.0, help="...and ends (s)")
    p.add_argument("--end", type=float, default=450.0, help="length of the run (s)")
    p.add_argument("--ttl", type=int, default=30, help="answer TTL (default 30, the zone's)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every delay (default 1: real scale; tests use less)")
    args = p.parse_args()
    random.seed(7)
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
