"""One steering decision: candidates, the filter chain, the all-down policy, the scope.

The same function answers queries (through the decision cache) and explanations:
it always records the chain step by step, which costs little next to the lookups and
is paid once per cached decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .addresses import GRAIN
from .chain import Candidate, Context
from .distance import haversine_km
from .filters import FILTERS
from .filters.score import score_of
from .health import HealthView, answer_ttl
from .locate import Located
from .model import Member, Pool, PoolAnswer


@dataclass(frozen=True, slots=True)
class Step:
    filter: str
    args: Any
    candidates: tuple[str, ...]  # after the step
    notes: tuple[str, ...] = ()


@dataclass
class Decision:
    answer: PoolAnswer
    prefix: int  # leading bits of the located address the answer holds for (0: everyone)
    located: Located
    family: int
    members: list[Candidate] = field(default_factory=list)  # every candidate, with figures
    steps: list[Step] = field(default_factory=list)
    picked: tuple[str, ...] = ()
    all_down: str | None = None  # the policy applied, if the chain left nothing


def region_of(located: Located) -> str:
    loc = located.location
    if loc is None:
        return ""
    return loc.city or loc.country or loc.continent or ""


def candidate(pool: Pool, m: Member, located: Located, health: HealthView) -> Candidate:
    h = health.get(pool.name, m.name)
    loc = located.location
    km = eff = None
    if loc is not None and m.lat is not None and m.lon is not None:
        km = haversine_km(loc.lat, loc.lon, m.lat, m.lon)
        eff = max(0.0, km - m.bias_km)
    return Candidate(m, h, km, eff, score_of(pool.score, eff, h))


def decide(
    pool: Pool, family: int, located: Located, health: HealthView, nets_have_members: bool
) -> Decision:
    members = [candidate(pool, m, located, health) for m in pool.members if m.addresses(family)]
    ttl = answer_ttl(health, pool.name, pool.ttl)  # shorter while members move
    d = Decision(PoolAnswer((), ttl), 0, located, family, members)
    if not members:  # the pool has no address of this family: NODATA for everyone
        return d
    ctx = Context(pool, located, family)
    cands = list(members)
    if located.members:
        listed = [c for c in cands if c.name in located.members]
        if listed:
            cands = listed
            d.steps.append(Step("nets", list(located.members), tuple(c.name for c in cands)))
    ranked = cands  # the last non-empty order: the all-down policy `all` answers best first
    for step in pool.chain:
        ctx.notes = []
        cands = FILTERS[step.name].run(ctx, cands, step.args)
        d.steps.append(Step(step.name, step.args, tuple(c.name for c in cands), tuple(ctx.notes)))
        ranked = cands or ranked

    cname = None
    if not cands:
        d.all_down = pool.all_down.policy
        if d.all_down == "all":
            cands = ranked + [c for c in members if c not in ranked]
        elif d.all_down == "cname":
            cname = pool.all_down.cname
    d.picked = tuple(c.name for c in cands)
    addresses = tuple(a for c in cands for a in c.member.addresses(family))

    # The answer depends on the client through its location (and the nets that gave
    # it), through nets member lists, and through hashes of its network.
    client_dependent = ctx.uses_location or nets_have_members
    prefix = located.prefix if client_dependent else 0
    prefix = min(max(prefix, ctx.hash_prefix), GRAIN[located.client.family])
    d.prefix = prefix
    n = located.client
    scope = n.offset + prefix if located.ecs and prefix else 0
    # A decision cached for everyone (prefix 0) must not name the first client's region.
    region = region_of(located) if prefix else ""
    d.answer = PoolAnswer(addresses, ttl, scope, cname, located.by_source, d.picked, region)
    return d
