"""How late this process's event loop has been running lately.

A probe that times out while the checker itself was stalled (a busy machine: the
process did not get the CPU) says little about the target: its answer may have arrived
and not been read in time, and the expired timer then wins. `LoopLag` ticks every
`TICK` seconds and keeps how late each tick woke up, so the service can tell a slow
target from its own delay.
"""

from __future__ import annotations

import asyncio
from collections import deque

TICK = 0.05
KEEP = 200  # ticks remembered: about 10 s


class LoopLag:
    def __init__(self) -> None:
        self.ticks: deque[tuple[float, float]] = deque(maxlen=KEEP)  # (woke at, late by)
        self.tick_started: float | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.tick_started = loop.time()
            await asyncio.sleep(TICK)
            now = loop.time()
            self.ticks.append((now, now - self.tick_started - TICK))

    def worst_since(self, since: float) -> float:
        """The longest stall (seconds late) of the ticks that ended at or after `since`
        (loop time), including the tick in progress."""
        worst = max((late for at, late in self.ticks if at >= since), default=0.0)
        if self.tick_started is not None:
            worst = max(worst, asyncio.get_running_loop().time() - self.tick_started - TICK)
        return worst
