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
  fraction averaged over the last TTL (what the resolvers' cached answers hold);
* **smoothed over a TTL**: the estimate is an exponentially weighted average with a
  time constant of one TTL;
* **target**: the fraction at which the watermark rule holds for the load that stays,
  shed = (load - low) / (high - low) with load = offered x (1 - shed), i.e.
  (offered - low) / (offered + high - low): nothing at or below `low`; an offered load
  of 1.0 with the default watermarks (0.7, 0.9) keeps 0.75. The load that stays is
  always between `low` and `high`;
* **damped**: the fraction moves towards the target by at most `STEP` at a time and
  at most once per half TTL (so at most 2 x `STEP` per TTL), and not at all while it
  is within `DEADBAND` of the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STEP = 0.1  # most the fraction moves at one change
DEADBAND = 0.03  # closer than this to the target: no change
MIN_KEPT = 0.05  # below this share kept, the reported load says nothing about the offered


def target_fraction(offered: float, low: float, high: float) -> float:
    if offered <= low:
        return 0.0
    return min(1.0, (offered - low) / (offered + high - low))


@dataclass
class ShedController:
    low: float
    high: float
    ttl: float  # seconds: the answers' TTL, how long a resolver keeps an answer
    fraction: float = 0.0  # published: the share of client networks shed
    offered: float | None = None  # the smoothed offered-load estimate
    in_force: float = 0.0  # the fraction averaged over the last TTL
    _at: float | None = None
    _changed: float = -math.inf

    def update(self, now: float, load: float) -> bool:
        """Take the member's current load; True when the fraction changed."""
        ttl = max(self.ttl, 1.0)
        w = 0.0 if self._at is None else 1.0 - math.exp(-max(0.0, now - self._at) / ttl)
        self._at = now
        self.in_force += w * (self.fraction - self.in_force)
        kept = 1.0 - self.in_force
        if kept >= MIN_KEPT:
            sample = load / kept
            self.offered = sample if self.offered is None else self.offered + w * (
                sample - self.offered)
        if self.offered is None:
            return False
        gap = target_fraction(self.offered, self.low, self.high) - self.fraction
        if abs(gap) <= DEADBAND or now - self._changed < ttl / 2:
            return False
        self.fraction = round(min(1.0, max(0.0, self.fraction + max(-STEP, min(STEP, gap)))), 3)
        self._changed = now
        return True
