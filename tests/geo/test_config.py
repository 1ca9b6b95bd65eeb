"""Validation of pools and nets: each mistake is reported with its path in the file."""

from __future__ import annotations

import pytest
import yaml

from geodns.steering import load_steering
from geodns.steering.model import DEFAULT_CHAIN

from .conftest import EXAMPLE_ZONE

GOOD_MEMBER = "{name: a, ipv4: 192.0.2.1, lat: 1, lon: 2}"


def reports(pools: str, nets: str = "") -> list[tuple[str, str]]:
    doc = yaml.safe_load(f"pools:\n{pools}\n" + (f"nets:\n{nets}\n" if nets else ""))
    out: list[tuple[str, str]] = []
    load_steering("cdn.example", doc.get("pools"), doc.get("nets"), lambda w, m: out.append((w, m)))
    return out


def test_example_zone_is_valid_and_has_the_documented_settings():
    doc = yaml.safe_load(EXAMPLE_ZONE.read_text())
    out: list = []
    s = load_steering("cdn.example", doc["pools"], doc["nets"], lambda w, m: out.append((w, m)))
    assert out == []
    p = s.pools["edges"]
    assert len(p.members) >= 6 and p.ttl == 30 and p.answers == 1
    assert p.chain == DEFAULT_CHAIN
    assert all(m.ipv4 and m.ipv6 and m.health_url for m in p.members)


@pytest.mark.parametrize(
    "pools, nets, where, words",
    [
        ("  p: {members: [{name: a, ipv4: 192.0.2.1, lat: 95, lon: 2}]}", "",
         "pools.p.members[0].lat", "between -90 and 90"),
        ("  p: {members: [{name: a, ipv4: 192.0.2.1, lat: 1}]}", "",
         "pools.p.members[0]", "both lat and lon"),
        ("  p: {members: [{name: a, ipv4: 192.0.2.1, lat: 1, lon: x}]}", "",
         "pools.p.members[0].lon", "must be a number"),
        (f"  p: {{chain: [healthy, closest], members: [{GOOD_MEMBER}]}}", "",
         "pools.p.chain[1]", "unknown filter 'closest'"),
        (f"  p: {{chain: [{{first_n: 0}}], members: [{GOOD_MEMBER}]}}", "",
         "pools.p.chain[0]", "count >= 1"),
        (f"  p: {{chain: [{{geofence: planet}}], members: [{GOOD_MEMBER}]}}", "",
         "pools.p.chain[0]", "continent or country"),
        (f"  p: {{members: [{GOOD_MEMBER}, {GOOD_MEMBER}]}}", "",
         "pools.p.members[1].name", "duplicate member name 'a'"),
        ("  p: {members: [{name: a, ipv4: 192.0.2.1, lat: 1, lon: 2, weight: -1}]}", "",
         "pools.p.members[0].weight", "between 0 and"),
        ("  p: {members: [{name: a, ipv4: 192.0.2.1, lat: 1, lon: 2, weight: 0}]}", "",
         "pools.p.members[0].weight", "above 0"),
        ("  p: {members: [{name: a, ipv4: 2001:db8::1, lat: 1, lon: 2}]}", "",
         "pools.p.members[0].ipv4", "not an IPv4 address"),
        (f"  p: {{watermarks: {{low: 0.9, high: 0.5}}, members: [{GOOD_MEMBER}]}}", "",
         "pools.p.watermarks", "must be below high"),
        (f"  p: {{all_down: panic, members: [{GOOD_MEMBER}]}}", "",
         "pools.p.all_down", "all, nodata or {cname: NAME}"),
        (f"  p: {{ttl: -5, members: [{GOOD_MEMBER}]}}", "", "pools.p.ttl", "between 0"),
        (f"  p: {{tll: 5, members: [{GOOD_MEMBER}]}}", "", "pools.p.tll", "unknown key"),
        ("  p: {members: []}", "", "pools.p.members", "non-empty list"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  10.0.0.0/33: {lat: 1, lon: 2}",
         "nets.10.0.0.0/33", "not a network"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  10.0.0.1/24: {lat: 1, lon: 2}",
         "nets.10.0.0.1/24", "host bits set"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  10.0.0.0/28: {lat: 1, lon: 2}",
         "nets.10.0.0.0/28", "longer than /24"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  2001:db8::/64: {lat: 1, lon: 2}",
         "nets.2001:db8::/64", "longer than /56"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  10.0.0.0/24: {members: [a, zz]}",
         "nets.10.0.0.0/24.members[1]", "unknown member 'zz'"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  10.0.0.0/24: {city: Nowhere}",
         "nets.10.0.0.0/24", "needs a location"),
        (f"  p: {{members: [{GOOD_MEMBER}]}}", "  10.0.0.0/24: {lat: 1, lon: 2, continent: XX}",
         "nets.10.0.0.0/24.continent", "continent must be one of"),
    ],
)
def test_each_mistake_is_reported_where_it_is(pools, nets, where, words):
    got = reports(pools, nets)
    assert any(w == where and words in m for w, m in got), got


def test_all_errors_are_listed_in_one_run():
    got = reports("  p: {chain: [nope], members: [{name: a, ipv4: x, lat: 100, lon: 2}]}")
    assert {w for w, _ in got} == {"pools.p.chain[0]", "pools.p.members[0].ipv4",
                                   "pools.p.members[0].lat"}
