"""A client's latency beacon: time a tiny fetch from its edge (and, sampled, from
alternates the edge names), then post the times to its edge (`latency.edge`).

Used by `cdn client --beacon`, `cdn simulate` and the latency world. A fetch is timed
on a connection that is already open, so the figure is one round trip plus the edge's
(tiny) work, alike for every edge; the least of two timed fetches is reported (delays
from a busy client only add), and the edges are timed in random order, so that no
edge is always timed first.
"""

from __future__ import annotations

import random
import time

import aiohttp

# The default beacon rate: a client beacons at most once every this many seconds (a
# browser page: once per page view). Half the beacons also time two alternates (the
# edge's `sample_rate` and `alternates`).
DEFAULT_INTERVAL_S = 3.0


async def time_fetch(session: aiohttp.ClientSession, base: str, timeout: float = 5.0) -> float:
    """Milliseconds of a GET of `base`/latency/object on a warm connection (the least
    of two)."""
    url = f"{base}/latency/object"
    t = aiohttp.ClientTimeout(total=timeout)
    async with session.get(url, timeout=t) as r:  # opens (or reuses) the connection
        await r.read()
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        async with session.get(url, timeout=t) as r:
            await r.read()
            r.raise_for_status()
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


async def beacon(session: aiohttp.ClientSession, edge_url: str,
                 rng: random.Random | None = None, sample_rate: float | None = None,
                 alternates: int | None = None) -> dict:
    """Measure and post one beacon through `session` (whose connector fixes the client's
    source address); returns {"samples": [...], "status": HTTP status of the post}.
    `sample_rate` and `alternates` default to what the edge's targets say."""
    rng = rng or random.Random()
    async with session.get(f"{edge_url}/latency/targets") as r:
        r.raise_for_status()
        targets = await r.json()
    rate = targets["sample_rate"] if sample_rate is None else sample_rate
    count = targets["alternates"] if alternates is None else alternates
    todo = [(targets["edge"], edge_url)]
    if rng.random() < rate:
        peers = sorted(targets["peers"].items())
        todo += rng.sample(peers, min(count, len(peers)))
    rng.shuffle(todo)
    samples = []
    for name, url in todo:
        try:
            samples.append({"edge": name, "ms": round(await time_fetch(session, url), 3)})
        except (aiohttp.ClientError, TimeoutError):
            if name == targets["edge"]:
                raise
            # an alternate that does not answer is simply not reported
    async with session.post(f"{edge_url}/latency/beacon", json={"samples": samples}) as r:
        await r.read()
        return {"samples": samples, "status": r.status}
