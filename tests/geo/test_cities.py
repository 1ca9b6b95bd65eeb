"""Clients in each city get the expected edge: by ECS (v4 and v6), by source address
through a nets override, and with IPv4 inside IPv6 (mapped, 6to4, Teredo)."""

from __future__ import annotations

import ipaddress

import pytest

from .conftest import CITY_ECS, ecs, picked, src


@pytest.mark.parametrize("city", sorted(CITY_ECS))
def test_ecs_client_in_each_city_gets_its_nearest_edge(example, city):
    v4, v6, member = CITY_ECS[city]
    assert picked(example, ecs(v4)) == [member]
    assert picked(example, ecs(v6)) == [member]
    # AAAA answers carry the same member's IPv6 address.
    i = "tokyo london virginia mumbai saopaulo sydney frankfurt".split().index(member) + 1
    assert picked(example, ecs(v4), "AAAA") == [f"v6:2001:db8:e0::{i}"]


@pytest.mark.parametrize(
    "source, member",
    [("127.0.2.1", "tokyo"), ("127.0.3.9", "london"), ("127.0.4.1", "virginia"),
     ("127.0.5.1", "mumbai"), ("127.0.6.1", "saopaulo"), ("127.0.7.1", "sydney"),
     ("127.0.8.1", "frankfurt")],
)
def test_source_address_client_located_by_nets_override(example, source, member):
    assert picked(example, src(source)) == [member]


def test_loopback_without_override_is_frankfurt_from_the_demo_database(example):
    assert picked(example, src("127.0.0.1")) == ["frankfurt"]


def test_anchor_networks_are_in_the_demo_database(example):
    for net, member in [("126.0.7.0/24", "tokyo"), ("177.0.3.0/24", "saopaulo"),
                        ("1.120.9.0/24", "sydney"), ("41.0.1.0/24", "mumbai")]:
        assert picked(example, ecs(net)) == [member]


def test_ipv4_mapped_source_is_unwrapped(example):
    assert picked(example, src("::ffff:198.18.6.10")) == ["sydney"]
    assert picked(example, src("::ffff:127.0.2.1")) == ["tokyo"]


def test_6to4_ecs_is_unwrapped_and_scope_is_in_ipv6_terms(example):
    # 2002:c612:0500::/40 carries 198.18.5.0/24 (São Paulo).
    client = ecs("2002:c612:500::/40")
    assert picked(example, client) == ["saopaulo"]
    assert example.answer("edges", "A", client).scope == 16 + 24


def test_teredo_source_is_unwrapped(example):
    # Teredo: server 65.54.227.120, client address obfuscated (bits inverted).
    client_v4 = int(ipaddress.ip_address("198.18.13.77"))
    server = 0x4136E378
    teredo = ipaddress.IPv6Address((0x20010000 << 96) | (server << 64) | (0xFFFFFFFF ^ client_v4))
    assert teredo.teredo[1] == ipaddress.ip_address("198.18.13.77")
    assert picked(example, src(str(teredo))) == ["tokyo"]  # Seoul


def test_short_ecs_of_embedded_address_is_not_unwrapped(example):
    # A /32 of 2002::/16 says nothing about the IPv4 /24 inside: looked up as IPv6.
    a = example.answer("edges", "A", ecs("2002:c612::/32"))
    assert a.addresses  # answered (by the resolver's location), never empty
    assert a.by_source
