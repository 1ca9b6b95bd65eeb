"""The load an edge reports in /health follows its utilization: steady under a steady
load, higher at a higher rate, back down when the traffic stops."""

from __future__ import annotations

import asyncio
import itertools
import time

from edgetest import predict

SETTLE_S = 15.0  # three load windows: the reading has converged on the offered rate
POLLS = 8


async def poll_load(http, url: str) -> float:
    async with http.get(f"{url}/health") as r:
        return (await r.json())["load"]


async def drive(http, url: str, rate: float, seeds: itertools.count) -> None:
    """Send prediction requests for distinct inputs (so each is computed) at `rate`
    per second, each on its own task (an open loop: the rate does not depend on the
    answers), until cancelled."""
    pending: set[asyncio.Task] = set()
    start = time.monotonic()
    try:
        for i in itertools.count():
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            task = asyncio.create_task(predict(http, url, next(seeds) + 0.5))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        for task in pending:
            task.cancel()


async def steady_readings(http, url: str) -> list[float]:
    await asyncio.sleep(SETTLE_S)
    readings = []
    for _ in range(POLLS):
        readings.append(await poll_load(http, url))
        await asyncio.sleep(0.5)
    return readings


def assert_steady(readings: list[float]) -> None:
    for before, after in itertools.pairwise(readings):
        assert abs(after - before) < 0.1 * before, readings


async def test_reported_load_follows_the_offered_rate(serve_process, http, models_dir):
    # Every request waits 40 ms for its batch to fill: at 4 requests/s the node is busy
    # about 16% of the time, at 12/s about 45%.
    edge = serve_process("--models", str(models_dir), "--capacity", "8", "--max-batch", "64",
                         "--max-queue-delay-ms", "40")
    seeds = itertools.count()
    low = asyncio.create_task(drive(http, edge.url, 4.0, seeds))
    at_low = await steady_readings(http, edge.url)
    low.cancel()
    high = asyncio.create_task(drive(http, edge.url, 12.0, seeds))
    at_high = await steady_readings(http, edge.url)
    high.cancel()
    assert_steady(at_low)
    assert_steady(at_high)
    assert 0.05 < at_low[-1] < 0.4 and at_high[-1] > 2 * at_low[-1], (at_low, at_high)

    # Without traffic it falls back (five windows: below a tenth of the busy figure).
    deadline = time.monotonic() + 60
    while (idle := await poll_load(http, edge.url)) > at_high[-1] / 10:
        assert time.monotonic() < deadline, f"load stays at {idle} after the traffic stopped"
        await asyncio.sleep(0.5)
