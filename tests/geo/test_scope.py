"""ECS scope against the MMDB's networks: a resolver that caches an answer for the
returned scope must never give any client of that network another answer."""

from __future__ import annotations

import ipaddress
import random

import pytest

from geodns.steering.health import Status

from .conftest import EXAMPLE_ZONE, HealthTable, ecs, steering_from

NESTED_NETS = """
  126.0.64.0/18: {lat: 51.5074, lon: -0.1278}          # inside Tokyo's GeoIP /16
  126.0.96.0/20: {members: [sydney, mumbai]}          # inside that override
  3.80.128.0/24: {lat: -23.5505, lon: -46.6333}       # one /24 inside Ashburn's /16
  2001:db8:3:100::/56: {lat: 35.6895, lon: 139.6917}  # one /56 inside Ashburn's /48
"""
V4_BASES = ["126.0.0.0/16", "81.2.0.0/16", "3.80.0.0/16", "177.0.0.0/16", "198.18.0.0/15",
            "0.0.0.0/0"]
V6_BASES = ["2001:db8:1::/48", "2001:db8:2::/47", "2001:db8::/32", "2002:c612::/32", "::/0"]


@pytest.fixture
def steering(geodb, health):
    text = EXAMPLE_ZONE.read_text() + NESTED_NETS
    s = steering_from(text, geodb)
    s.set_health(health)
    return s


def random_client_net(rng: random.Random) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    base = ipaddress.ip_network(rng.choice(V4_BASES + V6_BASES))
    grain = 24 if base.version == 4 else 56
    addr = int(base.network_address) + rng.randrange(base.num_addresses)
    return ipaddress.ip_network(f"{ipaddress.ip_address(addr)}/{grain}", strict=False)


def inside(net_addr, scope: int, grain: int, rng: random.Random) -> str:
    """A random client network of `grain` bits inside `net_addr`/`scope`."""
    net = ipaddress.ip_network(f"{net_addr}/{scope}", strict=False)
    addr = int(net.network_address) + rng.randrange(net.num_addresses)
    return str(ipaddress.ip_network(f"{ipaddress.ip_address(addr)}/{grain}", strict=False))


@pytest.mark.parametrize("tokyo_load", [0.0, 0.8])
def test_every_client_inside_the_scope_gets_the_same_answer(steering, health, tokyo_load):
    health.set("edges", "tokyo", load=tokyo_load)  # 0.8: shedding, hash-dependent
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        net = random_client_net(rng)
        a = steering.answer("edges", "A", ecs(str(net)))
        grain = 24 if net.version == 4 else 56
        assert 0 <= a.scope <= grain
        n = steering.decide("edges", "A", ecs(str(net))).located.client
        if n.embedded:  # scope counts bits of the IPv6 address that carries the IPv4 one
            assert a.scope >= n.offset
        for _ in range(8):
            other = inside(net.network_address, a.scope, grain, rng)
            got = steering.decide("edges", "A", ecs(other)).answer.addresses
            assert got == a.addresses, (str(net), a.scope, other)
            checked += 1
    assert checked == 2400


def test_scope_matches_the_geoip_network_when_nothing_narrower_matters(example, geodb):
    for net, db_net in [("126.0.200.0/24", "126.0.0.0/16"), ("198.18.5.0/24", "198.18.5.0/24"),
                        ("2001:db8:5:ff00::/56", "2001:db8:5::/48")]:
        rec = geodb.lookup(ipaddress.ip_network(net).network_address)
        assert rec.prefix == ipaddress.ip_network(db_net).prefixlen
        assert example.answer("edges", "A", ecs(net)).scope == rec.prefix


def test_scope_narrows_to_leave_out_a_more_specific_override(steering):
    # 126.0.128.0/24: GeoIP /16 Tokyo, but the /18 override (London) sits in that /16.
    # The widest prefix around it without the /18 is 126.0.128.0/17.
    assert steering.answer("edges", "A", ecs("126.0.128.0/24")).scope == 17
    assert steering.answer("edges", "A", ecs("126.0.64.0/24")).scope == 19  # /18 minus the /20
    assert steering.answer("edges", "A", ecs("126.0.96.0/24")).scope == 20
    assert steering.answer("edges", "A", ecs("3.80.129.0/24")).scope == 24
    assert steering.answer("edges", "A", ecs("2001:db8:3:100::/56")).scope == 56


def test_decisions_are_cached_once_per_scope_network(steering):
    for i in range(256):
        steering.answer("edges", "A", ecs(f"177.0.{i}.0/24"))
    assert len(steering.cache) == 1  # one decision for São Paulo's /16
    for i in range(10):
        steering.answer("edges", "A", ecs(f"3.80.{i}.0/24"))
    assert len(steering.cache) == 2


def test_health_change_drops_cached_decisions(steering, health):
    assert steering.answer("edges", "A", ecs("198.18.1.0/24")).addresses == ("127.0.1.1",)
    health.set("edges", "tokyo", load=1.0, shed=1.0)  # the checker's controller sheds all
    assert steering.answer("edges", "A", ecs("198.18.1.0/24")).addresses != ("127.0.1.1",)


def test_another_health_view_drops_cached_decisions(steering, health):
    health.set("edges", "tokyo")  # generation 1: Tokyo up
    assert steering.answer("edges", "A", ecs("198.18.1.0/24")).addresses == ("127.0.1.1",)
    other = HealthTable()
    other.set("edges", "tokyo", Status.DOWN)  # also generation 1, another state
    steering.set_health(other)
    assert steering.answer("edges", "A", ecs("198.18.1.0/24")).addresses != ("127.0.1.1",)


def test_source_dependent_answers_are_cached_per_resolver(steering):
    centroid = "198.18.100.0/24"  # Brazil, country level
    a1 = steering.answer("edges", "A", ecs(centroid, source="127.0.2.1"))  # resolver "Tokyo"
    a2 = steering.answer("edges", "A", ecs(centroid, source="127.0.6.1"))  # resolver São Paulo
    assert a1.by_source and a2.by_source
    assert a1.addresses == a2.addresses == ("127.0.1.5",)  # Tokyo disagrees with BR: centroid
    # A US centroid client: resolver in Ashburn (agrees) vs in Tokyo (disagrees)
    us = "198.18.101.0/24"
    assert steering.answer("edges", "A", ecs(us, source="127.0.4.1")).addresses == ("127.0.1.3",)
    assert steering.answer("edges", "A", ecs(us, source="127.0.2.1")).addresses == ("127.0.1.3",)
