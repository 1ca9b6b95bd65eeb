"""How much of its clients a member sheds: a damped controller per (pool, member).

The `shed` filter gives away the fraction `MemberHealth.shed` of a leading member's
client networks. The health checker computes that fraction with a `ShedController`
per pool member, from the load the member reports, and publishes it with the rest of
the member's state (so every worker and explanation sees the same figure).

Why a controller: the load a member reports is measured *after* shedding, and resolvers
only move when they ask again (every TTL). Computing the fraction straight from the
reported load makes a loop that overshoots, swings back and never settles. So:

* **offered load**: the load the member would carry without shedding, estimated as
  reported load / (1 - the fraction in force), where the fraction in force is the
  fraction averaged over the last TTL (what the resolvers' cached answers hold: a
  resolver that asked at any moment of the last TTL holds the fraction of that moment).
  Because the estimate accounts for the answers still cached, it needs no wait for
  the effect of a change: it is smoothed only against noise, as the mean over the last
  `SMOOTH` of a TTL, so the first step follows the overload at once (feed-forward)
  instead of a TTL later;
* **target**: the fraction at which the watermark rule holds for the load that stays,
  shed = (load - low) / (high - low) with load = offered x (1 - shed), i.e.
  (offered - low) / (offered + high - low): nothing at or below `low`; an offered load
  of 1.0 with the default watermarks (0.7, 0.9) keeps 0.75. The load that stays is
  always between `low` and `high`;
* **closing on what was actually shed**: the estimate assumes the shed share of the
  load is the shed share of client networks. It is not when resolvers without ECS
  (each a lump of clients, shed only past one half: `filters.shed`) carry part of the
  load: a fraction of 0.25 then sheds less than 0.25 of it, the reported load stays
  higher, the estimate reads higher and the target rises, until the load that stays
  meets the rule for the estimate. With 30 % of the load behind one resolver without
  ECS that fixed point keeps 0.767 of an offered 1.0 (instead of 0.75), a fraction of
  0.33; the member cannot tell how many clients hide behind one resolver, so the
  residual is what the lumps cost, not a lag;
* **damped**: the fraction moves towards the target at most `STEP` per half TTL (a
  steady slope, so at most 2 x `STEP` per TTL) and is published in steps of `GRAIN`;
* **deadband with hysteresis**: the fraction starts moving only once the target is
  more than `DEADBAND` away, and then goes all the way to it (not to the edge of the
  deadband, which would leave a standing error); noise smaller than the deadband
  moves nothing, so client networks (and whole resolvers) are not moved back and
  forth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

STEP = 0.25  # most the fraction moves in half a TTL
GRAIN = 0.01  # the published fraction moves in steps of this
DEADBAND = 0.02  # the fraction starts moving only when the target is further than this
MIN_KEPT = 0.05  # below this share kept, the reported load says nothing about the offered
BUCKETS = 20  # of a sliding window
SMOOTH = 0.25  # the offered-load estimate is a mean over this share of a TTL


def target_fraction(offered: float, low: float, high: float) -> float:
    if offered <= low:
        return 0.0
    return min(1.0, (offered - low) / (offered + high - low))


class Window:
    """The mean of the values added over the last `span` seconds (in `BUCKETS` buckets,
    so its size does not depend on how often values come)."""

    def __init__(self, span: float) -> None:
        self.width = span / BUCKETS
        self.buckets: deque[list[float]] = deque(maxlen=BUCKETS)  # [start, sum, count]

    def add(self, now: float, value: float) -> None:
        if not self.buckets or now - self.buckets[-1][0] >= self.width:
            self.buckets.append([now, 0.0, 0.0])
        bucket = self.buckets[-1]
        bucket[1] += value
        bucket[2] += 1

    def mean(self) -> float | None:
        n = sum(b[2] for b in self.buckets)
        return sum(b[1] for b in self.buckets) / n if n else None


@dataclass
class ShedController:
    low: float
    high: float
    ttl: float  # seconds: the answers' TTL, how long a resolver keeps an answer
    fraction: float = 0.0  # published: the share of client networks shed
    _fractions: Window = field(init=False)  # the fraction in force over the last TTL
    _offered: Window = field(init=False)  # recent offered-load estimates
    _exact: float = 0.0  # the fraction before rounding to GRAIN
    _moving: bool = False  # past the deadband: moving until it reaches the target
    _at: float | None = None  # the last update

    def __post_init__(self) -> None:
        ttl = max(self.ttl, 1.0)
        self._fractions = Window(ttl)
        self._offered = Window(ttl * SMOOTH)

    @property
    def offered(self) -> float | None:
        """The smoothed offered-load estimate (None before the first load)."""
        return self._offered.mean()

    def update(self, now: float, load: float) -> bool:
        """Take the member's current load; True when the published fraction changed."""
        ttl = max(self.ttl, 1.0)
        dt = 0.0 if self._at is None else min(max(0.0, now - self._at), ttl / 2)
        self._at = now
        self._fractions.add(now, self.fraction)
        kept = 1.0 - (self._fractions.mean() or 0.0)
        if kept >= MIN_KEPT:
            self._offered.add(now, load / kept)
        offered = self.offered
        if offered is None:
            return False
        gap = target_fraction(offered, self.low, self.high) - self._exact
        if abs(gap) > DEADBAND:
            self._moving = True
        if not self._moving:
            return False
        most = STEP * dt / (ttl / 2)
        self._exact = min(1.0, max(0.0, self._exact + max(-most, min(most, gap))))
        if abs(gap) <= most:
            self._moving = False  # arrived: hold until the target moves past the deadband
        published = round(round(self._exact / GRAIN) * GRAIN, 3)
        if published == self.fraction:
            return False
        self.fraction = published
        return True
