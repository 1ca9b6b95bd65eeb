"""Per-member bias and load shedding between the watermarks move clients as specified."""

from __future__ import annotations

from collections import Counter

import pytest

from geodns.steering.health import Status

from .conftest import ecs, picked, steering_from

TOKYO_NETS = [f"126.0.{i}.0/24" for i in range(256)]  # all Tokyo (one GeoIP /16)


def spread(s, nets=TOKYO_NETS) -> Counter:
    return Counter(picked(s, ecs(n))[0] for n in nets)


def test_bias_km_pulls_clients_towards_a_member(geodb):
    zone = """
pools:
  p:
    chain: [nearest, first_n]
    members:
      - {name: london, ipv4: 127.0.1.2, lat: 51.5074, lon: -0.1278}
      - {name: frankfurt, ipv4: 127.0.1.7, lat: 50.1109, lon: 8.6821, bias_km: BIAS}
"""
    paris = ecs("198.18.11.0/24")  # London 344 km, Frankfurt 478 km

    def pick(bias: str, client) -> list[str]:
        return picked(steering_from(zone.replace("BIAS", bias), geodb), client, pool="p")

    assert pick("0", paris) == ["london"]
    assert pick("100", paris) == ["london"]
    assert pick("150", paris) == ["frankfurt"]  # 478 - 150 = 328 < 344
    # A negative bias pushes clients away: even Frankfurt's own clients go to London.
    assert pick("-700", ecs("198.18.7.0/24")) == ["london"]


def test_below_low_watermark_nothing_moves(example, health):
    health.set("edges", "tokyo", load=0.7)
    assert spread(example) == {"tokyo": 256}
    assert example.answer("edges", "A", ecs(TOKYO_NETS[0])).scope == 16  # no hash used


def test_between_watermarks_a_growing_fraction_is_shed(example, health):
    health.set("edges", "tokyo", load=0.8)  # halfway: half the networks leave
    half = spread(example)
    assert 100 < half["tokyo"] < 156
    shed_at_08 = {n for n in TOKYO_NETS if picked(example, ecs(n)) != ["tokyo"]}
    health.set("edges", "tokyo", load=0.85)  # three quarters
    assert 30 < spread(example)["tokyo"] < 100
    shed_at_085 = {n for n in TOKYO_NETS if picked(example, ecs(n)) != ["tokyo"]}
    assert shed_at_08 <= shed_at_085  # networks already shed stay shed
    # Shedding decisions hang on the client /24: the scope says so.
    assert example.answer("edges", "A", ecs(TOKYO_NETS[0])).scope == 24


def test_shed_clients_spread_over_the_next_members_by_spare_capacity(example, health):
    # For Tokyo the next two by score are mumbai (6,724 km) and sydney (7,827 km) once
    # the farther ones are busier (score counts load too).
    for far in ("london", "frankfurt", "virginia", "saopaulo"):
        health.set("edges", far, load=0.6)
    health.set("edges", "tokyo", load=0.95)  # above high: everything is shed
    health.set("edges", "mumbai", load=0.1)  # spare 0.8
    health.set("edges", "sydney", load=0.5)  # spare 0.4
    got = spread(example)
    assert set(got) == {"mumbai", "sydney"}
    assert got["mumbai"] / got["sydney"] == pytest.approx(2.0, rel=0.35)


def test_a_dead_leader_spreads_its_clients_instead_of_piling_onto_one(example, health):
    health.set("edges", "tokyo", Status.DOWN)
    got = spread(example)
    assert set(got) == {"mumbai", "sydney"}
    assert min(got.values()) > 60  # equal spare capacity: about half each


def test_members_above_high_do_not_receive_shed_clients(example, health):
    health.set("edges", "tokyo", Status.DOWN)
    health.set("edges", "mumbai", load=0.95)
    got = spread(example)
    # mumbai is full: sydney and the next usable (by score) share the clients.
    assert "mumbai" not in got and got["sydney"] > 0
