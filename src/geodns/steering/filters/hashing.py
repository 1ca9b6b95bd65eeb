"""`weighted` and `sticky`: rendezvous (highest random weight) hashing of the client network.

Each candidate gets a pseudo-random number from (client network, member name), and
the candidates are ordered by `-weight / ln(u)`: the first is member m with
probability weight(m) / sum(weights) over client networks, yet fixed for one network,
and removing a member only moves the clients that had it first. "Random by weight"
is therefore random across client networks, not across queries: a resolver's cache
and the ECS scope stay consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..addresses import GRAIN
from ..chain import Candidate, Context, Filter
from ._args import mapping, no_args


def rendezvous(
    ctx: Context, cands: list[Candidate], weights: list[float], prefix: int, salt: str
) -> list[Candidate]:
    """Order `cands` by weighted rendezvous hashing of the client's network at `prefix`."""

    def key(i: int) -> float:
        u = ctx.client_hash(prefix, f"{salt}:{cands[i].name}")
        u = min(max(u, 1e-12), 1 - 1e-12)
        return -weights[i] / math.log(u)

    order = sorted(range(len(cands)), key=key, reverse=True)
    return [cands[i] for i in order]


def weighted(ctx: Context, cands: list[Candidate], args: None) -> list[Candidate]:
    """Order by member `weight`, per client /24 or /56."""
    if len(cands) < 2:
        return cands
    prefix = ctx.grain
    return rendezvous(ctx, cands, [c.member.weight for c in cands], prefix, "weighted")


@dataclass(frozen=True, slots=True)
class Stickiness:
    v4: int = GRAIN[4]
    v6: int = GRAIN[6]


def sticky(ctx: Context, cands: list[Candidate], s: Stickiness) -> list[Candidate]:
    """Order by plain rendezvous hashing of the client network at the given prefix: every
    client of that network keeps its member while the member is a candidate."""
    if len(cands) < 2:
        return cands
    prefix = s.v4 if ctx.client_family == 4 else s.v6
    return rendezvous(ctx, cands, [1.0] * len(cands), prefix, "sticky")


def _parse_sticky(args: Any) -> Stickiness:
    spec = mapping(args, {"v4", "v6"})
    out = {}
    for fam, grain in (("v4", GRAIN[4]), ("v6", GRAIN[6])):
        p = spec.get(fam, grain)
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= grain:
            raise ValueError(f"sticky {fam} must be a prefix length 0..{grain}, got {p!r}")
        out[fam] = p
    return Stickiness(**out)


WEIGHTED = Filter(weighted, no_args)
STICKY = Filter(sticky, _parse_sticky)
