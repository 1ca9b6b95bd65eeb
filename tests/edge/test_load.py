"""The load an edge reports in /health follows its utilization: steady under a steady
load, higher at a higher rate, back down when the traffic stops."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from edgetest import features

from edge.load import WINDOW_S

SETTLE_S = 15.0  # three load windows: the reading has converged on the offered rate
POLL_S = 0.5  # nominal time between two polls: rate * POLL_S requests
POLLS = 8
UPLOAD_S = 0.04  # how long each client takes to send its request body


@dataclass
class Poll:
    sent: float  # when the poll left (client monotonic clock)
    answered: float  # when its answer came back
    load: float


async def poll_load(http, url: str) -> float:
    async with http.get(f"{url}/health") as r:
        return (await r.json())["load"]


async def slow_predict(http, url: str, seed: float) -> None:
    """One prediction from a client on a slow link: the edge holds the request (from its
    headers to its answer) for at least `UPLOAD_S`, whatever the machine's pace, and the
    compute behind it is a small share of that."""
    body = json.dumps({"features": features(seed)}).encode()

    async def upload() -> AsyncIterator[bytes]:
        yield body[:8]
        await asyncio.sleep(UPLOAD_S)
        yield body[8:]

    async with http.post(f"{url}/predict", data=upload(),
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.text()


async def drive(http, url: str, rate: float, seeds: itertools.count) -> list[Poll]:
    """Send prediction requests for distinct inputs at `rate` per second, each on its
    own task (an open loop: the rate does not depend on the answers). After `SETTLE_S`,
    poll the load after every `rate * POLL_S` requests: polls are paced by requests, not
    by the clock, so each window holds the same number of requests however late this
    process runs. Returns `POLLS` polls."""
    per_poll = round(rate * POLL_S)
    pending: set[asyncio.Task] = set()
    polls: list[Poll] = []
    start = time.monotonic()
    try:
        for i in itertools.count():
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            task = asyncio.create_task(slow_predict(http, url, next(seeds) + 0.5))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if i >= rate * SETTLE_S and i % per_poll == 0:
                sent = time.monotonic()
                load = await poll_load(http, url)
                polls.append(Poll(sent, time.monotonic(), load))
                if len(polls) == POLLS:
                    return polls
    finally:
        for task in pending:
            task.cancel()
    raise AssertionError("unreachable")


def assert_steady(polls: list[Poll], rate: float) -> None:
    """Between two polls the reading moves by less than 10%, unless the offered load
    itself moved: a busy machine can stall this process, which then offers nothing for
    a while and catches up in a burst. The edge's figure then rightly moves by at most
    the window's weight (`1 - exp(-dt / WINDOW_S)`) times the relative change in the
    offered rate (`rate * POLL_S` requests in `dt` seconds), measured here for each
    window; with the rate kept, that allowance is nil and 10% is the whole bound."""
    per_poll = round(rate * POLL_S)
    for before, after in itertools.pairwise(polls):
        allowance = 0.0
        # The edge read its load between a poll's sending and its answer.
        for dt in (after.sent - before.answered, after.answered - before.sent):
            dt = max(dt, 1e-3)
            weight = 1.0 - math.exp(-dt / WINDOW_S)
            allowance = max(allowance, weight * abs(per_poll / dt / rate - 1.0))
        change = abs(after.load - before.load)
        assert change < (0.1 + allowance) * before.load, (
            [p.load for p in polls], [round(b.sent - a.sent, 3)
                                      for a, b in itertools.pairwise(polls)])


async def test_reported_load_follows_the_offered_rate(serve_process, http, models_dir):
    # Every request is in flight for its 40 ms upload and a little compute: at 4 requests/s
    # the node is busy about 17% of the time, at 12/s about 50%.
    edge = serve_process("--models", str(models_dir), "--capacity", "8")
    seeds = itertools.count()
    at_low = await drive(http, edge.url, 4.0, seeds)
    at_high = await drive(http, edge.url, 12.0, seeds)
    assert_steady(at_low, 4.0)
    assert_steady(at_high, 12.0)
    low, high = at_low[-1].load, at_high[-1].load
    assert 0.05 < low < 0.6 and high > 2 * low, (low, high)

    # Without traffic it falls back (five windows: below a tenth of the busy figure).
    deadline = time.monotonic() + 60
    while (idle := await poll_load(http, edge.url)) > high / 10:
        assert time.monotonic() < deadline, f"load stays at {idle} after the traffic stopped"
        await asyncio.sleep(0.5)
