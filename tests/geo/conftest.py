"""Fixtures for the geo steering tests: the demo City database built by our builder,
the example zone's steering, and a health table fed through the HealthView contract."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from geodns.steering import Client, ZoneSteering, load_steering
from geodns.steering.demo_db import DEMO_CSV, build
from geodns.steering.geoip import GeoDB
from geodns.steering.health import MemberHealth, Status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ZONE = ROOT / "zones" / "cdn.example.yaml"

# A client /24 (v4) and /48 (v6) in each example city, from the demo database.
CITY_ECS = {
    "Tokyo": ("198.18.1.0/24", "2001:db8:1::/48", "tokyo"),
    "London": ("198.18.2.0/24", "2001:db8:2::/48", "london"),
    "Ashburn": ("198.18.3.0/24", "2001:db8:3::/48", "virginia"),
    "Mumbai": ("198.18.4.0/24", "2001:db8:4::/48", "mumbai"),
    "São Paulo": ("198.18.5.0/24", "2001:db8:5::/48", "saopaulo"),
    "Sydney": ("198.18.6.0/24", "2001:db8:6::/48", "sydney"),
    "Frankfurt": ("198.18.7.0/24", "2001:db8:7::/48", "frankfurt"),
    "Johannesburg": ("198.18.8.0/24", "2001:db8:8::/48", "mumbai"),
    "Singapore": ("198.18.9.0/24", "2001:db8:9::/48", "mumbai"),
    "Los Angeles": ("198.18.10.0/24", "2001:db8:a::/48", "virginia"),
    "Paris": ("198.18.11.0/24", "2001:db8:b::/48", "london"),
    "Buenos Aires": ("198.18.12.0/24", "2001:db8:c::/48", "saopaulo"),
    "Seoul": ("198.18.13.0/24", "2001:db8:d::/48", "tokyo"),
}
EDGE_V4 = {n: f"127.0.1.{i}" for i, n in enumerate(
    ["tokyo", "london", "virginia", "mumbai", "saopaulo", "sydney", "frankfurt"], 1)}
EDGE_BY_V4 = {v: k for k, v in EDGE_V4.items()}
RESOLVER = ipaddress.ip_address("127.0.0.53")  # a resolver with no nets override


class HealthTable:
    """A health state set by the test, served through the `HealthView` contract."""

    def __init__(self) -> None:
        self.generation = 0
        self._states: dict[tuple[str, str], MemberHealth] = {}

    def set(self, pool: str, member: str, status: Status = Status.UP, load: float = 0.0,
            hit_rate: float = 0.0, shed: float = 0.0) -> None:
        self._states[pool, member] = MemberHealth(status=status, load=load, hit_rate=hit_rate,
                                                  shed=shed)
        self.generation += 1

    def get(self, pool: str, member: str) -> MemberHealth:
        return self._states.get((pool, member), MemberHealth())


@pytest.fixture(scope="session")
def geodb(tmp_path_factory) -> GeoDB:
    """The demo database, built from its CSV by our builder into a fresh file."""
    path = build(DEMO_CSV, tmp_path_factory.mktemp("geo") / "geo-demo.mmdb")
    return GeoDB(path)


def steering_from(text_or_path: str | Path, geodb: GeoDB, zone: str = "cdn.example"):
    """ZoneSteering from a zone YAML text or file; fails the test on any report."""
    doc = yaml.safe_load(Path(text_or_path).read_text() if isinstance(text_or_path, Path)
                         else text_or_path)
    errors: list[tuple[str, str]] = []
    s = load_steering(zone, doc.get("pools"), doc.get("nets"), lambda w, m: errors.append((w, m)))
    assert errors == []
    s.set_geoip(geodb)
    return s


@pytest.fixture
def health() -> HealthTable:
    return HealthTable()


@pytest.fixture
def example(geodb, health) -> ZoneSteering:
    s = steering_from(EXAMPLE_ZONE, geodb)
    s.set_health(health)
    return s


def ecs(net: str, source=RESOLVER) -> Client:
    return Client(ipaddress.ip_address(source), ipaddress.ip_network(net))


def src(address: str) -> Client:
    return Client(ipaddress.ip_address(address))


def picked(s: ZoneSteering, client: Client, qtype: str = "A", pool: str = "edges") -> list[str]:
    """Member names of the answer (by their example-zone addresses)."""
    ans = s.answer(pool, qtype, client)
    if qtype == "A":
        return [EDGE_BY_V4.get(a, a) for a in ans.addresses]
    return [f"v6:{a}" for a in ans.addresses]
