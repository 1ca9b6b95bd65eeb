"""One steering decision: the settle window, candidates, the filter chain, the all-down
policy, and from what the chain read (`chain.Context`) the prefix, cache key and scope.

The same function answers queries (through the decision cache) and explanations:
it always records the chain step by step, which costs little next to the lookups and
is paid once per cached decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .addresses import BITS, GRAIN
from .chain import Candidate, Context
from .distance import haversine_km
from .filters import FILTERS
from .filters.score import score_of
from .health import HealthView, answer_ttl, is_settled
from .locate import Located
from .measured import LatencyView, NoLatency
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
    state_read: frozenset[str] = frozenset()  # members whose health or load was read


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
    pool: Pool, family: int, located: Located, health: HealthView, nets_have_members: bool,
    source: tuple[int, int], latency: LatencyView | None = None,
) -> Decision:
    """The decision for one client. `source` is the grain network of the packet's source
    (`addresses.grain_network`): part of the key when the source was consulted."""
    members = [candidate(pool, m, located, health) for m in pool.members if m.addresses(family)]
    ttl = answer_ttl(health, pool.name, pool.ttl, False)  # shortened below if unsteady
    n = located.client
    base = (pool.name, family, n.family, n.offset, located.ecs)
    d = Decision(PoolAnswer((), ttl, key=(*base, 0, 0, None)), 0, located, family, members)
    if not is_settled(health, pool.name):  # states not settled: SERVFAIL, resolvers retry
        d.answer = PoolAnswer((), ttl, key=d.answer.key, settling=True)
        return d
    if not members:  # the pool has no address of this family: NODATA for everyone
        return d
    ctx = Context(pool, located, family, latency=latency or NoLatency())
    cands = list(members)
    if nets_have_members and ctx.nets_members:
        listed = [c for c in cands if c.name in (ctx.nets_members or ())]
        if listed:
            cands = listed
            d.steps.append(Step("nets", list(ctx.nets_members or ()), tuple(c.name for c in cands)))
    ranked = cands  # the last non-empty order: the all-down policy `all` answers best first
    for step in pool.chain:
        ctx.notes = []
        cands = FILTERS[step.name].run(ctx, cands, step.args)
        d.steps.append(Step(step.name, step.args, tuple(c.name for c in cands), tuple(ctx.notes)))
        ranked = cands or ranked

    cname = None
    if not cands:
        d.all_down = pool.all_down.policy
        if ctx.fence is not None and d.all_down == "all":  # a strict fence fails closed
            cands = [c for c in ranked if c.name in ctx.fence]
            cands += [c for c in members if c.name in ctx.fence and c not in cands]
            d.all_down = "all inside the strict geofence" if cands else "nodata (strict geofence)"
        elif d.all_down == "all":
            cands = ranked + [c for c in members if c not in ranked]
        elif d.all_down == "cname":
            cname = pool.all_down.cname
    d.picked = tuple(c.name for c in cands)
    ttl = answer_ttl(health, pool.name, pool.ttl, unsteady_part(d))  # shorter while it moves
    addresses = tuple(a for c in cands for a in c.member.addresses(family))
    d.state_read = frozenset(ctx.state_read)

    # What the answer depends on, from what the chain read: the client's location
    # (valid for `located.prefix` bits), hashes of its network and the latency figures
    # of its network. Nothing read: the answer is the same for every client of this
    # family, prefix 0.
    prefix = max(located.prefix if ctx.uses_location else 0, ctx.hash_prefix,
                 ctx.latency_prefix)
    if prefix:
        prefix = max(min(prefix, GRAIN[n.family]), n.floor)
    d.prefix = prefix
    by_source = located.by_source and ctx.uses_location
    network = int(n.address) >> (BITS[n.family] - prefix)
    key = (*base, prefix, network, source if by_source else None)
    scope = n.offset + prefix if located.ecs and prefix else 0
    # A decision cached for everyone (prefix 0) must not name the first client's region.
    region = region_of(located) if prefix else ""
    d.answer = PoolAnswer(addresses, ttl, scope, cname, by_source, key, False, d.picked, region)
    return d


def unsteady_part(d: Decision) -> bool:
    """Whether an unsteady member (down, without a verdict, changing) is part of the
    answer: answered, or ranked by some step ahead of every answered member (the clients
    it lost while down get the short TTL, so they come back soon after it does). Other
    clients of the pool keep the long TTL."""
    unsteady = {c.name for c in d.members if c.health.unsteady}
    if not unsteady:
        return False
    if unsteady & set(d.picked):
        return True
    for step in d.steps:
        for name in step.candidates:
            if name in d.picked:
                break
            if name in unsteady:
                return True
    return False
