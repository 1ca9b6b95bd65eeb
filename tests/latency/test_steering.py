"""The `latency` filter in a zone's steering, fed through the `LatencyView` contract by
the `FigureTable` a DNS server keeps (no measurements, measured networks, covering
networks, the margin, one edge), and the table's own bounds."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from geodns.steering import Client, ZoneSteering, load_steering
from geodns.steering.demo_db import DEMO_CSV, build
from geodns.steering.geoip import GeoDB
from latency.settings import LatencySettings
from latency.table import FigureTable, decayed_quantile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "zones" / "cdn.example.yaml").read_text()
LATENCY_CHAIN = "chain: [score, latency, shed, healthy, first_n]"
# ECS networks of demo cities (the demo GeoIP database) and their nearest edge.
CITIES = {"198.18.1.0/24": "tokyo", "198.18.2.0/24": "london", "198.18.3.0/24": "virginia",
          "198.18.4.0/24": "mumbai", "198.18.11.0/24": "london", "198.18.13.0/24": "tokyo",
          "2001:db8:d::/48": "tokyo", "2001:db8:2::/48": "london"}
RESOLVER = ipaddress.ip_address("127.0.0.53")
V4 = {f"127.0.1.{i}": n for i, n in enumerate(
    ["tokyo", "london", "virginia", "mumbai", "saopaulo", "sydney", "frankfurt"], 1)}


@pytest.fixture(scope="module")
def geodb(tmp_path_factory) -> GeoDB:
    return GeoDB(build(DEMO_CSV, tmp_path_factory.mktemp("geo") / "demo.mmdb"))


def steering(geodb: GeoDB, text: str) -> ZoneSteering:
    doc = yaml.safe_load(text)
    errors: list = []
    s = load_steering("cdn.example", doc["pools"], doc.get("nets"), lambda *e: errors.append(e))
    assert errors == []
    s.set_geoip(geodb)
    return s


def ecs(net: str) -> Client:
    return Client(RESOLVER, ipaddress.ip_network(net))


def answer(s: ZoneSteering, net: str, qtype: str = "A") -> tuple[str, int]:
    a = s.answer("edges", qtype, ecs(net))
    return V4.get(a.addresses[0], a.addresses[0]), a.scope


def feed(table: FigureTable, address: str, figures: dict[str, float], n: int = 6) -> None:
    for edge, ms in figures.items():
        for i in range(n):
            table.add(address, edge, ms + i % 2)
    table.refresh()


@pytest.fixture
def measured(geodb) -> tuple[ZoneSteering, FigureTable]:
    s = steering(geodb, EXAMPLE.replace("chain: [score, shed, healthy, first_n]", LATENCY_CHAIN))
    table = FigureTable()
    s.set_latency(table)
    return s, table


def test_with_no_measurements_the_answers_are_geo_steerings(geodb, measured) -> None:
    geo = steering(geodb, EXAMPLE)
    s, _ = measured
    unfed = steering(geodb, EXAMPLE.replace("chain: [score, shed, healthy, first_n]",
                                            LATENCY_CHAIN))  # no --latency-redis at all
    for net in CITIES:
        for qtype in ("A", "AAAA"):
            want = geo.answer("edges", qtype, ecs(net))
            assert s.answer("edges", qtype, ecs(net)).addresses == want.addresses
            assert unfed.answer("edges", qtype, ecs(net)) == want
        assert answer(geo, net)[0] == CITIES[net] if ":" not in net else True


def test_a_measured_network_goes_to_its_fastest_edge_alone(measured) -> None:
    s, table = measured
    assert answer(s, "198.18.13.0/24")[0] == "tokyo"  # Seoul, before
    feed(table, "198.18.13.9", {"tokyo": 170, "mumbai": 88, "sydney": 127})
    assert answer(s, "198.18.13.0/24") == ("mumbai", 24)
    # Its neighbours in other /16s, and every other city, keep their answers.
    for net, edge in CITIES.items():
        if net != "198.18.13.0/24" and ":" not in net:
            assert answer(s, net)[0] == edge
    notes = [n for step in s.explain("edges", "A", ecs("198.18.13.0/24"))["chain"]
             for n in step["notes"]]
    assert any("mumbai 88 ms (6 samples)" in n and "tokyo 170 ms (6 samples)" in n
               for n in notes), notes


def test_within_the_margin_the_nearest_edge_keeps_the_lead(measured) -> None:
    s, table = measured
    feed(table, "198.18.2.1", {"london": 20, "frankfurt": 12})  # faster, but by < 10 ms
    assert answer(s, "198.18.2.0/24")[0] == "london"
    feed(table, "198.18.2.1", {"london": 60}, n=40)  # now by far more
    assert answer(s, "198.18.2.0/24")[0] == "frankfurt"


def test_a_network_without_figures_falls_back_to_its_covering_network(measured) -> None:
    s, table = measured
    # Two /24s of one /20 measured; a third /24 of that /20 has nothing of its own.
    feed(table, "198.18.16.1", {"tokyo": 150, "mumbai": 40})
    feed(table, "198.18.17.1", {"tokyo": 170, "mumbai": 50})
    a = s.explain("edges", "A", ecs("198.18.18.0/24"))
    notes = " ".join(n for step in a["chain"] for n in step["notes"])
    assert "198.18.16.0/20 (median of 2 networks)" in notes, notes
    # One network alone does not make a covering figure (it speaks for itself only).
    table2 = FigureTable()
    feed(table2, "198.18.16.1", {"tokyo": 150, "mumbai": 40})
    s.set_latency(table2)
    notes = " ".join(n for step in s.explain("edges", "A", ecs("198.18.18.0/24"))["chain"]
                     for n in step["notes"])
    assert "measured" not in notes, notes
    # The answer for that lonely /24 then holds for that /24 only (a neighbour has data).
    assert s.answer("edges", "A", ecs("198.18.18.0/24")).scope == 24


def test_a_pool_of_one_edge(geodb) -> None:
    one = EXAMPLE.replace("chain: [score, shed, healthy, first_n]", LATENCY_CHAIN)
    doc = yaml.safe_load(one)
    doc["pools"]["edges"]["members"] = doc["pools"]["edges"]["members"][:1]
    doc["nets"] = {k: v for k, v in doc["nets"].items() if "members" not in v}
    s = steering(geodb, yaml.safe_dump(doc))
    table = FigureTable()
    s.set_latency(table)
    assert answer(s, "198.18.2.0/24")[0] == "tokyo"
    feed(table, "198.18.2.1", {"tokyo": 250})
    assert answer(s, "198.18.2.0/24") == ("tokyo", 24)


def test_figures_expire_and_the_table_stays_bounded() -> None:
    now = [1000.0]
    table = FigureTable(LatencySettings(max_networks=10, expiry_s=60), clock=lambda: now[0])
    for i in range(25):
        feed(table, f"10.{i}.0.1", {"tokyo": 30})
    assert table.networks == 10 and table.evicted == 15
    assert table.lookup(ipaddress.ip_address("10.24.0.9")).figures
    assert not table.lookup(ipaddress.ip_address("10.0.0.9")).figures  # evicted
    generation = table.generation
    now[0] += 61
    table.refresh(everything=True)
    assert table.networks == 0
    assert table.generation > generation  # cached decisions on those figures are dropped
    assert not table.lookup(ipaddress.ip_address("10.24.0.9")).figures


def test_the_decayed_quantile_shrugs_off_outliers_and_follows_change() -> None:
    steady = [(float(t), 20.0) for t in range(10)]
    assert decayed_quantile(steady + [(10.0, 59000.0)] * 3, 10, 30, 0.25) == 20.0
    # The route slowed down 20 s ago, after two minutes of history: the newer samples
    # outweigh the longer older history.
    changed = [(float(t), 20.0) for t in range(30)] + [(float(t), 120.0) for t in range(110, 130)]
    assert decayed_quantile(changed, 130, 30, 0.25) == 120.0
    assert decayed_quantile(changed[:35], 115, 30, 0.25) == 20.0  # 5 s ago: not yet
