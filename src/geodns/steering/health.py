"""The health state that steering reads (the contract that `healthcheck` implements).

`geodns` only ever reads a `HealthView`: per (pool, member), a `MemberHealth`, and a
`generation` number that changes whenever anything that could change an answer
changes (status, smoothed load or hit rate, overrides). Decision caches key on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class Status(enum.StrEnum):
    UNKNOWN = "unknown"  # no settled probe result yet
    UP = "up"
    DOWN = "down"
    DRAINING = "draining"  # alive for its clients, out of new answers


@dataclass(frozen=True, slots=True)
class MemberHealth:
    status: Status = Status.UP
    load: float = 0.0  # 0..1, smoothed
    hit_rate: float = 0.0  # 0..1, smoothed
    latency_ms: float | None = None
    since: float = 0.0  # unix time of the last status change
    reason: str = ""
    changing: bool = False  # failures or successes are being counted towards a change
    shed: float = 0.0  # 0..1, the share of its client networks it gives away (`shedding`)

    @property
    def unsteady(self) -> bool:
        """Down, without a verdict, or being counted towards a change: an answer that
        this member is part of may change soon, so it carries the pool's short TTL."""
        return self.status in (Status.DOWN, Status.UNKNOWN) or self.changing


class HealthView(Protocol):
    @property
    def generation(self) -> int: ...

    def get(self, pool: str, member: str) -> MemberHealth: ...


# Optional, read with getattr by the answer path (the health checker's zone views
# have both): `settled(pool) -> bool` - False while the pool must not be answered yet
# (its members' states have not settled); `ttl_for(pool, ttl, unsteady) -> int` - the
# TTL of an answer from a pool whose zone-file TTL is `ttl`, shorter when `unsteady`
# (an unsteady member is part of the answer: answered, or ranked ahead of the answer).


def answer_ttl(view: HealthView, pool: str, ttl: int, unsteady: bool) -> int:
    ttl_for = getattr(view, "ttl_for", None)
    return ttl if ttl_for is None else ttl_for(pool, ttl, unsteady)


def is_settled(view: HealthView, pool: str) -> bool:
    settled = getattr(view, "settled", None)
    return True if settled is None else settled(pool)


class AllUp:
    """The view used when no health checking is configured: every member up, idle."""

    generation = 0
    _UP = MemberHealth()

    def get(self, pool: str, member: str) -> MemberHealth:
        return self._UP
