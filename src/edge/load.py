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
    """`step(+1)` when a request starts, `step(-1)` when it ends; `load` reads.

    A step adds the time since the last one to two running integrals (busy time, and
    requests in flight over time); the first step `FOLD_S` or more after the last fold
    folds them into the two averages, as one interval weighted ``1 - exp(-interval /
    window)``. Folding per interval rather than per request keeps the exponential off the
    request path; the readings differ from a per-request average by at most about
    ``FOLD_S / window`` (0.02)."""

    FOLD_S = 0.1

    def __init__(self, capacity: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.window_s = window_s
        self.inflight = 0
        self._clock = clock
        self._at = self._folded = clock()
        self._busy_s = 0.0  # time with a request in flight, since the last fold
        self._area = 0.0  # integral of inflight over time, since the last fold
        self._busy = 0.0  # time-weighted mean of (inflight > 0)
        self._level = 0.0  # time-weighted mean of inflight

    def step(self, change: int) -> None:
        now = self._clock()
        if self.inflight:
            self._busy_s += now - self._at
            self._area += self.inflight * (now - self._at)
        self._at = now
        self.inflight += change
        if now - self._folded >= self.FOLD_S:
            self._fold(now)

    def _fold(self, now: float) -> None:
        span = now - self._folded
        if span > 0:
            w = 1.0 - math.exp(-span / self.window_s)
            self._busy += w * (self._busy_s / span - self._busy)
            self._level += w * (self._area / span - self._level)
        self._busy_s = self._area = 0.0
        self._folded = now

    @property
    def load(self) -> float:
        self.step(0)
        self._fold(self._at)  # up to now, if the step did not
        return min(1.0, max(self._busy, self._level / self.capacity))
