"""Combining the votes of several vantage points, and matching overrides (pure logic)."""

from __future__ import annotations

import pytest

from geodns.steering.health import MemberHealth, Status
from healthcheck.overrides import OverrideError, parse_override
from healthcheck.quorum import Vote, combine


def votes(*statuses: Status, load: float = 0.5) -> list[Vote]:
    return [Vote(f"v{i}", MemberHealth(status=s, load=load, reason=f"r{i}"))
            for i, s in enumerate(statuses)]


def test_down_needs_a_majority_of_those_with_an_opinion():
    U, D, K = Status.UP, Status.DOWN, Status.UNKNOWN
    assert combine(votes(U, D, D)).status == Status.DOWN
    split = combine(votes(U, U, D))
    assert split.status == Status.UP and split.changing
    assert combine(votes(D, U)).status == Status.UP  # 1 of 2 is no majority
    assert combine(votes(D, K, K)).status == Status.DOWN  # the unknowns do not count
    assert combine(votes(K, K)) is None  # no opinion: the server uses its own probes


def test_explicit_quorum():
    D, U = Status.DOWN, Status.UP
    assert combine(votes(D, U, U), quorum=1).status == Status.DOWN
    assert combine(votes(D, D, U), quorum=3).status == Status.UP
    assert combine(votes(D, D), quorum=3).status == Status.UP  # cannot reach it: stays up


def test_alive_votes_give_draining_and_mean_figures():
    v = votes(Status.UP, Status.DRAINING, Status.DOWN)
    v[0] = Vote("v0", MemberHealth(status=Status.UP, load=0.2, hit_rate=0.4))
    v[1] = Vote("v1", MemberHealth(status=Status.DRAINING, load=0.4, hit_rate=0.8))
    h = combine(v)
    assert h.status == Status.DRAINING
    assert (h.load, h.hit_rate) == (pytest.approx(0.3), pytest.approx(0.6))


def test_override_selectors():
    member = parse_override({"zone": "cdn.example", "pool": "edges", "member": "tokyo",
                             "state": "down"}, now=0)
    assert member.matches("cdn.example.", "edges", "tokyo")  # the origin's trailing dot
    assert not member.matches("other.example.", "edges", "tokyo")
    site = parse_override({"site": "tokyo", "state": "draining", "for": "2m"}, now=100)
    assert site.matches("any.", "backup", "tokyo") and site.until == 220
    assert site.active(219) and not site.active(220)
    assert member.rank() > site.rank()
    for bad in ({"site": "a", "pool": "b", "state": "up"}, {"state": "up"},
                {"pool": "p", "state": "up", "for": "1m", "until": 5}, {"pool": 3, "state": "up"}):
        with pytest.raises(OverrideError):
            parse_override(bad, now=0)
