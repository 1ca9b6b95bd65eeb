"""`healthy`: drop the members that must not get new clients (down or draining).

A member whose state is UNKNOWN (no settled probe yet) stays: at start-up every member
is unknown, and dropping them all would leave nothing to answer.
"""

from __future__ import annotations

from ..chain import Candidate, Context, Filter
from ..health import Status
from ._args import no_args

UNUSABLE = (Status.DOWN, Status.DRAINING)


def healthy(ctx: Context, cands: list[Candidate], args: None) -> list[Candidate]:
    kept = [c for c in cands if ctx.state(c).status not in UNUSABLE]
    dropped = [f"{c.name} ({ctx.state(c).status.value})" for c in cands if c not in kept]
    if dropped:
        ctx.notes.append("dropped " + ", ".join(dropped))
    return kept


HEALTHY = Filter(healthy, no_args)
