"""`shed`: the leading candidate gives away a share of its clients to the nearest members
with spare capacity.

The leader (the first candidate, e.g. the best by `score` or `nearest`) gives away the
fraction `shed` of its client networks that the health checker publishes for it (a
damped controller between the pool's watermarks: `steering.shedding`), or all of them
when it is down or draining. Shed clients go to the nearest usable member (not down or
draining, load below `high`); with `watermarks.spread` n > 1, to one of the n nearest
(rendezvous hashing of the client network).

Which client networks are shed is decided by a hash of the client's /24 or /56, so the
answer is stable per network (resolver caches stay consistent) and, as the fraction
grows, the networks already shed stay shed. A query without ECS stands for all the
clients of a resolver, a lump the fraction cannot split: such resolvers are shed only
once the fraction passes one half (their hash is mapped onto [0.5, 1)), so the fine
grain of ECS networks moves first and a big resolver does not swing back and forth.
Put `shed` before `healthy` so that a leader that dies spreads its clients too.
"""

from __future__ import annotations

from ..chain import Candidate, Context, Filter
from ._args import no_args
from .hashing import rendezvous
from .health import UNUSABLE


def shed(ctx: Context, cands: list[Candidate], args: None) -> list[Candidate]:
    if len(cands) < 2:
        return cands
    w = ctx.pool.watermarks
    leader = cands[0]
    h = ctx.state(leader)
    if h.status in UNUSABLE:
        fraction, why = 1.0, f"{leader.name} is {h.status.value}"
    elif h.shed <= 0.0:
        return cands
    else:
        fraction, why = h.shed, f"{leader.name} (load {h.load:.2f}) sheds {h.shed:.0%}"
    receivers = [
        c for c in cands[1:] if ctx.state(c).status not in UNUSABLE and ctx.state(c).load < w.high
    ]
    if not receivers:
        ctx.notes.append(f"{why}, but no member has spare capacity")
        return cands
    u = ctx.client_hash(ctx.grain, "shed")
    if not ctx.ecs:
        u = 0.5 + u / 2  # a whole resolver: shed last
    if u >= fraction:
        ctx.notes.append(f"{why}; this client network stays (hash {u:.2f})")
        return cands
    far = float("inf")
    nearest = sorted(receivers, key=lambda c: d if (d := ctx.distance(c)) is not None else far)
    nearest = nearest[: w.spread]
    pick = nearest[0] if len(nearest) == 1 else rendezvous(
        ctx, nearest, [1.0] * len(nearest), ctx.grain, "shed")[0]
    ctx.notes.append(f"{why}; this client network (hash {u:.2f}) goes to {pick.name}, "
                     "the nearest with spare capacity")
    return [pick] + [c for c in cands if c is not pick]


SHED = Filter(shed, no_args)
