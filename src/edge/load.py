"""The load an edge reports in /health: its utilization over the last few seconds.

An instant's in-flight count is mostly noise (a poll lands between two requests or on
a burst), so the node integrates two signals over time, each an exponentially
time-weighted average with time constant `WINDOW_S` (about the last 5 seconds weigh
most; a steady load reads the same poll after poll):

* busy time: the fraction of time at least one request was being served (for a node
  whose requests go one after the other, the share of time it was working);
* concurrency: the mean number of requests in flight over `capacity` (for a node that
  serves many at once).

`load` is the larger of the two, at most 1.0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

WINDOW_S = 5.0


class Utilization:
    def __init__(self, capacity: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.window_s = window_s
        self.inflight = 0
        self._clock = clock
        self._at = clock()
        self._busy = 0.0  # time-weighted mean of (inflight > 0)
        self._level = 0.0  # time-weighted mean of inflight

    def _advance(self) -> None:
        now = self._clock()
        w = 1.0 - math.exp(-max(0.0, now - self._at) / self.window_s)
        self._busy += w * ((1.0 if self.inflight else 0.0) - self._busy)
        self._level += w * (self.inflight - self._level)
        self._at = now

    def started(self) -> None:
        self._advance()
        self.inflight += 1

    def finished(self) -> None:
        self._advance()
        self.inflight -= 1

    @property
    def load(self) -> float:
        self._advance()
        return min(1.0, max(self._busy, self._level / self.capacity))
