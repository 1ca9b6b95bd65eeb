"""Every filter of the selection chain, alone and combined."""

from __future__ import annotations

from collections import Counter

import pytest

from geodns.steering.health import Status

from .conftest import ecs, steering_from

MEMBERS = """
    members:
      - {name: tokyo, ipv4: 192.0.2.1, lat: 35.6895, lon: 139.6917, country: JP, continent: AS,
         weight: 1, priority: 2}
      - {name: london, ipv4: 192.0.2.2, lat: 51.5074, lon: -0.1278, country: GB, continent: EU,
         weight: 3, priority: 1}
      - {name: frankfurt, ipv4: 192.0.2.3, lat: 50.1109, lon: 8.6821, country: DE, continent: EU,
         weight: 1, priority: 1}
      - {name: virginia, ipv4: 192.0.2.4, lat: 39.0438, lon: -77.4874, country: US, continent: NA,
         weight: 4, priority: 2}
"""
NAMES = {"192.0.2.1": "tokyo", "192.0.2.2": "london", "192.0.2.3": "frankfurt",
         "192.0.2.4": "virginia"}
TOKYO, PARIS, FRANKFURT = "198.18.1.0/24", "198.18.11.0/24", "198.18.7.0/24"
ASHBURN = "198.18.3.0/24"


def pool(geodb, health, chain: str, answers: int = 1, extra: str = ""):
    s = steering_from(f"pools:\n  p:\n    answers: {answers}\n    chain: {chain}\n{extra}{MEMBERS}",
                      geodb)
    s.set_health(health)
    return s


def names(s, net):
    return [NAMES[a] for a in s.answer("p", "A", ecs(net)).addresses]


def test_nearest_orders_by_distance(geodb, health):
    s = pool(geodb, health, "[nearest]", answers=4)
    assert names(s, PARIS) == ["london", "frankfurt", "virginia", "tokyo"]


def test_first_n_default_is_pool_answers_and_takes_a_count(geodb, health):
    s = pool(geodb, health, "[nearest, first_n]", answers=2)
    assert names(s, PARIS) == ["london", "frankfurt"]
    assert names(pool(geodb, health, "[nearest, {first_n: 3}]", answers=1), PARIS) == [
        "london", "frankfurt", "virginia"]


def test_healthy_drops_down_and_draining_keeps_unknown(geodb, health):
    s = pool(geodb, health, "[healthy, nearest]", answers=4)
    health.set("p", "london", Status.DOWN)
    health.set("p", "frankfurt", Status.DRAINING)
    health.set("p", "virginia", Status.UNKNOWN)
    assert names(s, PARIS) == ["virginia", "tokyo"]


def test_score_weighs_distance_load_and_hit_rate(geodb, health):
    s = pool(geodb, health, "[score, first_n]")
    assert names(s, PARIS) == ["london"]
    # London (344 km) full and cold, Frankfurt (478 km) idle and warm: Frankfurt wins.
    health.set("p", "london", load=1.0, hit_rate=0.0)
    health.set("p", "frankfurt", load=0.0, hit_rate=0.9)
    assert names(s, PARIS) == ["frankfurt"]
    d = s.decide("p", "A", ecs(PARIS))
    fr = next(c for c in d.members if c.name == "frankfurt")
    expected = 0.5 / (1 + fr.km / 1000) + 0.3 * 1.0 + 0.2 * 0.9
    assert fr.score == pytest.approx(expected)


def test_score_weights_come_from_the_zone(geodb, health):
    # Distance only: load does not matter any more.
    weights = "    score: {distance: 1, load: 0, hit_rate: 0}\n"
    s = pool(geodb, health, "[score, first_n]", extra=weights)
    health.set("p", "london", load=1.0)
    assert names(s, PARIS) == ["london"]


def test_weighted_spreads_client_networks_by_weight_and_is_stable(geodb, health):
    s = pool(geodb, health, "[weighted, first_n]")
    counts = Counter(names(s, f"126.0.{i}.0/24")[0] for i in range(256))
    counts += Counter(names(s, f"81.2.{i}.0/24")[0] for i in range(256))
    # weights 1 : 3 : 1 : 4 over 512 networks
    assert counts["virginia"] > counts["london"] > counts["tokyo"]
    assert 512 * 4 / 9 * 0.75 < counts["virginia"] < 512 * 4 / 9 * 1.25
    assert 512 * 1 / 9 * 0.5 < counts["frankfurt"] < 512 * 1 / 9 * 1.6
    # Same network, same answer (fresh decision, no cache involved).
    first = [s.decide("p", "A", ecs(f"126.0.{i}.0/24")).picked for i in range(20)]
    again = [s.decide("p", "A", ecs(f"126.0.{i}.0/24")).picked for i in range(20)]
    assert first == again
    assert s.answer("p", "A", ecs("126.0.1.0/24")).scope == 24  # per-/24 hash


def test_sticky_keeps_networks_and_moves_only_the_lost_members_clients(geodb, health):
    s = pool(geodb, health, "[healthy, sticky, first_n]")
    before = {i: names(s, f"126.0.{i}.0/24")[0] for i in range(128)}
    assert len(set(before.values())) == 4
    health.set("p", "london", Status.DOWN)
    after = {i: names(s, f"126.0.{i}.0/24")[0] for i in range(128)}
    moved = [i for i in before if before[i] != after[i]]
    assert moved and all(before[i] == "london" for i in moved)


def test_sticky_prefix_sets_the_granularity_and_the_scope(geodb, health):
    s = pool(geodb, health, "[{sticky: {v4: 16}}, first_n]")
    assert len({names(s, f"126.0.{i}.0/24")[0] for i in range(64)}) == 1
    assert s.answer("p", "A", ecs("126.0.5.0/24")).scope == 16


def test_priority_keeps_the_best_level_then_fails_over(geodb, health):
    s = pool(geodb, health, "[healthy, priority, nearest]", answers=4)
    assert names(s, TOKYO) == ["frankfurt", "london"]  # level 1 only, nearest first
    health.set("p", "london", Status.DOWN)
    health.set("p", "frankfurt", Status.DOWN)
    assert names(s, TOKYO) == ["tokyo", "virginia"]  # level 2 takes over


def test_geofence_by_continent_and_country(geodb, health):
    s = pool(geodb, health, "[geofence, nearest]", answers=4)
    assert names(s, PARIS) == ["london", "frankfurt"]  # Europe only
    s = pool(geodb, health, "[{geofence: country}, nearest]", answers=4)
    assert names(s, FRANKFURT) == ["frankfurt"]
    # No member in Brazil: a non-strict fence is not applied...
    assert len(names(s, "198.18.5.0/24")) == 4


def test_strict_geofence_leaves_nothing_and_the_all_down_policy_answers(geodb, health):
    s = pool(geodb, health, "[{geofence: {by: country, strict: true}}, nearest]",
             extra="    all_down: nodata\n")
    a = s.answer("p", "A", ecs("198.18.5.0/24"))
    assert a.addresses == () and a.cname is None
    assert s.decide("p", "A", ecs("198.18.5.0/24")).all_down == "nodata"
    assert names(s, FRANKFURT) == ["frankfurt"]


def test_static_chain_does_not_depend_on_the_client_scope_zero(geodb, health):
    s = pool(geodb, health, "[healthy, priority, first_n]")
    assert s.answer("p", "A", ecs(TOKYO)).scope == 0
    assert s.answer("p", "A", ecs(ASHBURN)).addresses == s.answer("p", "A", ecs(TOKYO)).addresses
