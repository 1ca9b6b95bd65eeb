"""`score`: order by the weighted score (highest first).

score = w_distance x 1 / (1 + km / 1000) + w_load x (1 - load) + w_hit_rate x hit_rate

with km the great-circle distance minus the member's `bias_km` (never below 0) and the
weights from the pool's `score:` (default 0.5 / 0.3 / 0.2). Without a client location
the distance term is 0 for every member, so load and hit rate decide. The value is
computed for every candidate up front (`decide.candidate`), so explanations show it.

Proximity first: with a client location, the score orders only the members within
the budget max(nearest + `within_km`, `within_factor` x nearest) (default 1,000 km and
1.3); the members beyond it follow, nearest first, so load and hit rate never send a
client across an ocean while a near member is usable.
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
    ranked = sorted(cands, key=lambda c: -ctx.score(c))
    km = {c.name: ctx.distance(c) for c in cands}
    known = [d for d in km.values() if d is not None]
    if not known:
        return ranked
    budget = ctx.pool.score.budget_km(min(known))
    inside = [c for c in ranked if (km[c.name] or 0.0) <= budget and km[c.name] is not None]
    beyond = sorted((c for c in cands if c not in inside and km[c.name] is not None),
                    key=lambda c: km[c.name] or 0.0)
    unknown = [c for c in ranked if km[c.name] is None]
    if beyond:
        ctx.notes.append(f"score orders members within {budget:,.0f} km; beyond, nearest first")
    return inside + beyond + unknown


SCORE = Filter(score, no_args)
