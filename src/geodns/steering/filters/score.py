"""`score`: order by the weighted score (highest first).

score = w_distance x 1 / (1 + km / 1000) + w_load x (1 - load) + w_hit_rate x hit_rate

with km the great-circle distance minus the member's `bias_km` (never below 0) and the
weights from the pool's `score:` (default 0.5 / 0.3 / 0.2). Without a client location
the distance term is 0 for every member, so load and hit rate decide. The value is
computed for every candidate up front (`decide.candidate`), so explanations show it.
"""

from __future__ import annotations

from ..chain import Candidate, Context, Filter
from ..health import MemberHealth
from ..model import ScoreWeights
from ._args import no_args


def score_of(w: ScoreWeights, effective_km: float | None, health: MemberHealth) -> float:
    distance = 0.0 if effective_km is None else 1.0 / (1.0 + effective_km / 1000.0)
    load = min(max(health.load, 0.0), 1.0)
    hit = min(max(health.hit_rate, 0.0), 1.0)
    return w.distance * distance + w.load * (1.0 - load) + w.hit_rate * hit


def score(ctx: Context, cands: list[Candidate], args: None) -> list[Candidate]:
    if ctx.location is not None and ctx.pool.score.distance:
        ctx.uses_location = True
    return sorted(cands, key=lambda c: -c.score)


SCORE = Filter(score, no_args)
