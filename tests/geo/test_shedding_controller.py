"""The shed controller (`steering.shedding`): driven by a population of resolvers that
each re-ask once per TTL, it settles on the watermark rule's fixed point, moves at a
bounded speed, and holds still under noise."""

from __future__ import annotations

import random

from geodns.steering.shedding import DEADBAND, STEP, ShedController, target_fraction

TTL = 10.0
TICK = 0.1


def run(offered: float, seconds: float, noise: float = 0.0, seed: int = 1, lump: float = 0.0):
    """Simulate: 200 resolvers at random phases, each holding the answer it got for a
    TTL; a resolver is shed when its hash is below the fraction at the time it asked.
    With `lump`, one more resolver without ECS carries that share of the load (its hash
    in [0.5, 1), as the `shed` filter maps it). Yields (time, fraction, kept load) every
    tick."""
    rng = random.Random(seed)
    c = ShedController(0.7, 0.9, TTL)
    share = (1.0 - lump) / 200
    resolvers = [[rng.uniform(0, TTL), rng.random(), False, share] for _ in range(200)]
    if lump:
        resolvers.append([rng.uniform(0, TTL), 0.5 + rng.random() / 2, False, lump])
    t = 0.0
    while t < seconds:
        for r in resolvers:  # next ask, hash, shed, share of the load
            if t >= r[0]:
                r[2], r[0] = r[1] < c.fraction, r[0] + TTL
        kept = offered * sum(r[3] for r in resolvers if not r[2])
        c.update(t, kept + rng.uniform(-noise, noise))
        yield t, c.fraction, kept
        t += TICK


def test_nothing_is_shed_at_or_below_low():
    assert all(f == 0.0 for _, f, _ in run(0.7, 60))
    assert target_fraction(0.7, 0.7, 0.9) == 0.0


def test_it_settles_on_the_fixed_point_and_stays():
    trace = list(run(1.0, 300))
    target = target_fraction(1.0, 0.7, 0.9)  # 0.25: keeps 0.75
    late = [(f, kept) for t, f, kept in trace if t >= 5 * TTL]
    assert all(abs(f - target) <= DEADBAND + 0.01 for f, _ in late)
    assert all(abs(kept - 0.75) <= 0.05 for _, kept in late)
    changes = [t for (t, f, _), (_, g, _) in zip(trace, trace[1:], strict=False) if f != g]
    assert changes and changes[-1] < 5 * TTL  # and then it holds still


def test_with_a_lump_behind_a_resolver_without_ecs_it_settles_within_3_ttls():
    # 30 % of the load behind one resolver that is shed only past one half: a share of
    # networks sheds less of the load; the controller closes on the load that stays.
    for seed in range(1, 6):
        trace = list(run(1.0, 200, seed=seed, lump=0.3))
        late = [kept for t, _, kept in trace if t >= 3 * TTL]
        assert all(abs(kept - 0.75) <= 0.05 for kept in late), seed
        assert all(f < 0.5 for _, f, _ in trace)  # the resolver itself never moves


def test_the_fraction_moves_at_most_two_steps_per_ttl():
    trace = list(run(2.0, 120))
    per_ttl = int(TTL / TICK)
    for i in range(len(trace) - per_ttl):
        assert abs(trace[i + per_ttl][1] - trace[i][1]) <= 2 * STEP + 0.011


def test_small_noise_moves_nothing_once_settled():
    trace = list(run(1.0, 400, noise=0.02, seed=7))
    settled = [f for t, f, _ in trace if t >= 10 * TTL]
    assert len(set(settled)) == 1
