"""Demand-based placement: which models an edge holds.

An edge counts requests per model over a sliding window (two fixed windows, the
current and the previous one). A model is *pinned* (always held), *hot* (demand at
or above the threshold: prefetched as soon as a version is announced) or *cold*
(loaded lazily on its first request, while that request is forwarded upstream, and
evicted after `idle_evict_s` without requests).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PlacementPolicy:
    pinned: frozenset[str] = frozenset()
    threshold: int = 20  # requests per window that make a model hot
    window_s: float = 60.0
    idle_evict_s: float = 600.0


@dataclass
class Demand:
    policy: PlacementPolicy
    _current: Counter = field(default_factory=Counter)
    _previous: Counter = field(default_factory=Counter)
    _window_start: float = field(default_factory=time.monotonic)
    last_used: dict[str, float] = field(default_factory=dict)

    def record(self, model: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._rotate(now)
        self._current[model] += 1
        self.last_used[model] = now

    def touch(self, model: str, now: float | None = None) -> None:
        """Mark a model as just loaded, so eviction counts idleness from now."""
        self.last_used[model] = time.monotonic() if now is None else now

    def _rotate(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed >= self.policy.window_s:
            self._previous = self._current if elapsed < 2 * self.policy.window_s else Counter()
            self._current = Counter()
            self._window_start = now

    def counts(self, now: float | None = None) -> dict[str, int]:
        """Requests per model over the last one to two windows."""
        self._rotate(time.monotonic() if now is None else now)
        return dict(self._current + self._previous)

    def hot(self, now: float | None = None) -> set[str]:
        return {m for m, n in self.counts(now).items() if n >= self.policy.threshold}

    def wanted(self, model: str, loaded: bool, now: float | None = None) -> bool:
        """Whether an announced version of `model` should be fetched right away."""
        return loaded or model in self.policy.pinned or model in self.hot(now)

    def idle(self, loaded: set[str], now: float | None = None) -> set[str]:
        now = time.monotonic() if now is None else now
        return {m for m in loaded - self.policy.pinned
                if now - self.last_used.get(m, now) >= self.policy.idle_evict_s}
