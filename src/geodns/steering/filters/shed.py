"""`shed`: load shedding of the leading candidate between the pool's two watermarks.

The leader (the first candidate, e.g. the best by `score` or `nearest`) keeps all its
clients while its load is at most `low`. Above that it gives away a growing fraction
(load - low) / (high - low) of its client networks, all of them at `high` or when it
is down or draining. Shed clients go to the next `spread` candidates that are usable
(not down or draining, load below `high`), in proportion to their spare capacity
weight x (high - load), instead of all piling onto the runner-up.

Which client networks are shed is decided by a hash of the client's /24 or /56, so the
answer is stable per network (resolver caches stay consistent) and, as the load rises,
the networks already shed stay shed. Put `shed` before `healthy` so that a leader that
dies spreads its clients too.
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
    elif h.load <= w.low:
        return cands
    else:
        fraction = min(1.0, (h.load - w.low) / (w.high - w.low))
        why = f"{leader.name} load {h.load:.2f} sheds {fraction:.0%}"
    receivers = [
        c for c in cands[1:] if ctx.state(c).status not in UNUSABLE and ctx.state(c).load < w.high
    ][: w.spread]
    if not receivers:
        ctx.notes.append(f"{why}, but no member has spare capacity")
        return cands
    grain = ctx.grain
    u = ctx.client_hash(grain, "shed")
    if u >= fraction:
        ctx.notes.append(f"{why}; this client network stays (hash {u:.2f})")
        return cands
    spare = [c.member.weight * (w.high - ctx.state(c).load) for c in receivers]
    pick = rendezvous(ctx, receivers, spare, grain, "shed")[0]
    ctx.notes.append(f"{why}; this client network (hash {u:.2f}) goes to {pick.name}")
    return [pick] + [c for c in cands if c is not pick]


SHED = Filter(shed, no_args)
