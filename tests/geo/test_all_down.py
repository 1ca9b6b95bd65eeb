"""When the chain leaves nothing the pool's all-down policy answers; never empty by accident."""

from __future__ import annotations

import pytest

from geodns.steering.health import Status

from .conftest import ecs, steering_from

ZONE = """
pools:
  p:
    ttl: 20
    all_down: POLICY
    members:
      - {name: a, ipv4: 192.0.2.1, lat: 35.6895, lon: 139.6917}
      - {name: b, ipv4: [192.0.2.2, 192.0.2.3], lat: 51.5074, lon: -0.1278}
"""


def zone(geodb, health, policy):
    s = steering_from(ZONE.replace("POLICY", policy), geodb)
    s.set_health(health)
    for m in ("a", "b"):
        health.set("p", m, Status.DOWN)
    return s


def test_default_policy_answers_every_member(geodb, health):
    s = zone(geodb, health, "all")
    a = s.answer("p", "A", ecs("198.18.1.0/24"))  # Tokyo: a first
    assert a.addresses == ("192.0.2.1", "192.0.2.2", "192.0.2.3") and a.ttl == 20
    a = s.answer("p", "A", ecs("198.18.2.0/24"))  # London: best first, as the chain ranked
    assert a.addresses == ("192.0.2.2", "192.0.2.3", "192.0.2.1")


def test_cname_policy(geodb, health):
    s = zone(geodb, health, "{cname: sorry}")
    a = s.answer("p", "A", ecs("198.18.1.0/24"))
    assert a.cname == "sorry.cdn.example." and a.addresses == ()
    s = zone(geodb, health, "{cname: maintenance.other.example.}")
    assert s.answer("p", "A", ecs("198.18.1.0/24")).cname == "maintenance.other.example."


def test_nodata_policy(geodb, health):
    s = zone(geodb, health, "nodata")
    a = s.answer("p", "A", ecs("198.18.1.0/24"))
    assert a.addresses == () and a.cname is None


def test_one_member_up_is_answered_whatever_the_policy(geodb, health):
    s = zone(geodb, health, "nodata")
    health.set("p", "b", Status.UP)
    assert s.answer("p", "A", ecs("198.18.1.0/24")).addresses == ("192.0.2.2", "192.0.2.3")


@pytest.mark.parametrize("policy", ["all", "nodata", "{cname: sorry}"])
def test_a_family_no_member_has_is_nodata_not_all_down(geodb, health, policy):
    s = zone(geodb, health, policy)
    a = s.answer("p", "AAAA", ecs("198.18.1.0/24"))
    assert a.addresses == () and a.cname is None and a.scope == 0
