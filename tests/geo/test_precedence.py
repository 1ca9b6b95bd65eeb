"""Where the client is: ECS vs source, nets overrides, accuracy of GeoIP records."""

from __future__ import annotations

import pytest

from .conftest import ecs, picked, steering_from

TWO_COAST = """
pools:
  us:
    chain: [nearest, first_n]
    members:
      - {name: virginia, ipv4: 192.0.2.1, lat: 39.0438, lon: -77.4874, country: US}
      - {name: oregon,   ipv4: 192.0.2.2, lat: 45.5152, lon: -122.6784, country: US}
      - {name: tokyo,    ipv4: 192.0.2.3, lat: 35.6895, lon: 139.6917, country: JP}
nets:
  198.18.10.0/24: {lat: 35.6895, lon: 139.6917, city: Tokyo}   # LA network, said to be Tokyo
  198.18.1.0/24: {members: [oregon]}                           # Tokyo network pinned
  126.0.0.0/17: {lat: 51.5074, lon: -0.1278}                    # inside Tokyo's /16
  126.0.0.0/20: {lat: -33.8688, lon: 151.2093}                  # longer prefix wins
  127.0.9.0/24: {lat: 34.0522, lon: -118.2437, country: US}     # a resolver in LA
"""
NAMES = {"192.0.2.1": "virginia", "192.0.2.2": "oregon", "192.0.2.3": "tokyo"}


@pytest.fixture
def us(geodb):
    return steering_from(TWO_COAST, geodb)


def names(s, client):
    return [NAMES[a] for a in s.answer("us", "A", client).addresses]


def test_nets_override_beats_geoip(us):
    assert names(us, ecs("198.18.10.0/24")) == ["tokyo"]


def test_nets_member_list_restricts_candidates(us):
    assert names(us, ecs("198.18.1.0/24")) == ["oregon"]


def test_longest_nets_prefix_wins(us):
    s = us
    located = s.decide("us", "A", ecs("126.0.1.0/24")).located
    assert (located.location.lat, located.location.lon) == (-33.8688, 151.2093)  # the /20
    located = s.decide("us", "A", ecs("126.0.100.0/24")).located
    assert located.location.lat == 51.5074  # the /17
    located = s.decide("us", "A", ecs("126.0.200.0/24")).located
    assert located.location.city == "Tokyo"  # GeoIP


def test_ecs_beats_source(us):
    # Resolver in LA (nets), client ECS in Ashburn (accurate): the ECS decides.
    assert names(us, ecs("198.18.3.0/24", source="127.0.9.1")) == ["virginia"]


def test_country_centroid_is_refined_by_an_agreeing_source(us):
    # ECS only says "United States" (centroid, 1000 km): nearest to it is virginia.
    assert names(us, ecs("198.18.101.0/24")) == ["virginia"]
    # The resolver is in LA (a nets override, US): the better signal wins.
    a = us.answer("us", "A", ecs("198.18.101.0/24", source="127.0.9.1"))
    assert [NAMES[x] for x in a.addresses] == ["oregon"]
    assert a.by_source  # the answer depends on the resolver too


def test_centroid_is_not_replaced_by_a_contradicting_source(us):
    # Resolver located in Tokyo by GeoIP (JP), ECS says US: the ECS country stands.
    assert names(us, ecs("198.18.101.0/24", source="198.18.1.1")) == ["virginia"]


def test_private_ecs_is_located_by_the_resolver_and_scoped_to_its_range(example):
    # Changed on purpose (the steering rework): the scope was /0, which let a resolver's ECS cache
    # give this answer to every client; it is now the prefix of the unusable range.
    for private, scope in (("10.1.2.0/24", 8), ("192.168.1.0/24", 16), ("100.64.3.0/24", 10),
                           ("fd00:1::/48", 7)):
        a = example.answer("edges", "A", ecs(private, source="127.0.2.1"))
        assert picked(example, ecs(private, source="127.0.2.1")) == ["tokyo"]
        assert a.scope == scope and a.by_source


def test_accurate_ecs_beats_a_nets_override_of_the_resolver(example):
    assert picked(example, ecs("198.18.6.0/24", source="127.0.2.1")) == ["sydney"]
    assert example.answer("edges", "A", ecs("198.18.6.0/24", "127.0.2.1")).by_source is False
