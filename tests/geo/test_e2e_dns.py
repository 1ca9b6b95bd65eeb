"""Geo steering through the real server: DNS over UDP and TCP with dnspython."""

from __future__ import annotations

import shutil

import aiohttp
import dns.edns
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from geodns.steering.demo_db import DEMO_CSV, build

from .conftest import CITY_ECS, EDGE_BY_V4
from .server import ADMIN, example_zones, start


@pytest.fixture(scope="module")
def geo_server(tmp_path_factory, geodb):
    tmp = tmp_path_factory.mktemp("geo-e2e")
    db = tmp / "city.mmdb"
    shutil.copy(geodb.path, db)
    server = start(example_zones(tmp), tmp, "--geoip", str(db), "--explain-from", "127.0.0.0/24")
    server.db = db
    yield server
    server.stop()


def members(resp) -> list[str]:
    return [EDGE_BY_V4.get(rd.address, rd.address) for rrset in resp.answer for rd in rrset]


def scope(resp) -> int | None:
    for opt in resp.options:
        if isinstance(opt, dns.edns.ECSOption):
            return opt.scopelen
    return None


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("city", ["Tokyo", "London", "Ashburn", "Mumbai", "São Paulo", "Sydney",
                                  "Frankfurt", "Singapore", "Buenos Aires"])
def test_ecs_clients_in_each_city(geo_server, city, tcp):
    v4, v6, member = CITY_ECS[city]
    r = geo_server.ask("edge.cdn.example", "A", ecs=v4, tcp=tcp)
    assert dns.rcode.to_text(r.rcode()) == "NOERROR"
    assert members(r) == [member]
    assert scope(r) == 24  # the demo DB's 198.18.N.0/24 networks
    r6 = geo_server.ask("edge.cdn.example", "A", ecs=v6, tcp=tcp)
    assert members(r6) == [member] and scope(r6) == 48  # the /48 of the database
    aaaa = geo_server.ask("edge.cdn.example", "AAAA", ecs=v4, tcp=tcp)
    assert [rd.address for rs in aaaa.answer for rd in rs][0].startswith("2001:db8:e0::")
    assert aaaa.answer[0].ttl == 30


@pytest.mark.parametrize("source, member", [("127.0.2.1", "tokyo"), ("127.0.3.1", "london"),
                                            ("127.0.4.1", "virginia"), ("127.0.6.1", "saopaulo"),
                                            ("127.0.7.1", "sydney")])
def test_source_address_clients_through_nets_overrides(geo_server, source, member):
    assert members(geo_server.ask("edge.cdn.example", source=source)) == [member]
    assert members(geo_server.ask("edge.cdn.example", source=source, tcp=True)) == [member]


def test_scope_follows_the_database_network(geo_server):
    r = geo_server.ask("edge.cdn.example", ecs="126.0.77.0/24")  # inside Tokyo's /16
    assert members(r) == ["tokyo"] and scope(r) == 16


def test_static_and_negative_answers_have_scope_zero(geo_server):
    r = geo_server.ask("www.cdn.example", ecs="198.18.1.0/24")
    assert scope(r) == 0 and r.answer
    r = geo_server.ask("nope.cdn.example", ecs="198.18.1.0/24")
    assert dns.rcode.to_text(r.rcode()) == "NXDOMAIN" and scope(r) == 0


@pytest.mark.parametrize("payload", [
    bytes([0, 1, 33, 0, 198, 18, 1, 0, 0]),  # IPv4 source prefix 33
    bytes([0, 1, 24, 0, 198, 18, 1, 7]),  # address bits beyond the source prefix
    bytes([0, 3, 24, 0, 198, 18, 1]),  # unknown family
    bytes([0, 1, 24, 0, 198, 18]),  # too few address octets for /24
], ids=["prefix-too-long", "host-bits", "family", "short"])
def test_malformed_ecs_is_formerr(geo_server, payload):
    r = geo_server.ask("edge.cdn.example", options=[dns.edns.GenericOption(8, payload)])
    assert dns.rcode.to_text(r.rcode()) == "FORMERR"
    assert members(geo_server.ask("edge.cdn.example", ecs="198.18.1.0/24")) == ["tokyo"]


def test_answers_that_depend_on_the_resolver_are_cached_per_resolver(geo_server):
    # ECS says only "United States" (a country centroid, 1000 km): nearest is virginia.
    # A resolver in Los Angeles refines it to oregon; one in Frankfurt does not agree.
    for _ in range(3):  # again and again: the server's caches must keep them apart
        la = geo_server.ask("edge.coasts.test", ecs="198.18.101.0/24", source="127.0.9.1")
        fra = geo_server.ask("edge.coasts.test", ecs="198.18.101.0/24", source="127.0.0.1")
        assert [rd.address for rs in la.answer for rd in rs] == ["192.0.2.2"]
        assert [rd.address for rs in fra.answer for rd in rs] == ["192.0.2.1"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_explain_through_dns_as_txt(geo_server, tcp):
    r = geo_server.ask("_explain.edge.cdn.example", "TXT", ecs="198.18.5.0/24", tcp=tcp)
    if not tcp:  # the explanation outgrows a UDP answer: truncated, as dig then retries
        assert r.flags & dns.flags.TC
        return
    text = "\n".join(s.decode() for rs in r.answer for rd in rs for s in rd.strings)
    assert "pick: saopaulo -> 127.0.1.5" in text
    assert "São Paulo" in text and "ECS scope /24" in text
    assert r.answer[0].ttl == 0 and scope(r) == 24
    # Only pool-bound names are explained; other _explain names are ordinary names.
    r = geo_server.ask("_explain.www.cdn.example", "TXT", tcp=True)
    assert dns.rcode.to_text(r.rcode()) == "NXDOMAIN"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_explain_txt_only_for_the_configured_networks(geo_server, tcp):
    # --explain-from 127.0.0.0/24: a client elsewhere sees no such name, before and
    # after an allowed client asked (the answers are cached per source network).
    for source, allowed in (("127.0.3.1", False), ("127.0.0.1", True), ("127.0.3.1", False)):
        r = geo_server.ask("_explain.edge.cdn.example", "TXT", source=source, tcp=tcp,
                             ecs="198.18.5.0/24")
        if allowed:
            assert dns.rcode.to_text(r.rcode()) == "NOERROR"
            assert r.answer or r.flags & dns.flags.TC
        else:
            assert dns.rcode.to_text(r.rcode()) == "NXDOMAIN" and not r.answer


async def test_admin_explain_is_the_same_decision(geo_server):
    async with aiohttp.ClientSession() as http:
        url = f"{geo_server.url}/admin/explain"
        params = {"name": "edge.cdn.example", "ecs": "198.18.5.0/24"}
        async with http.get(url, params=params) as resp:
            assert resp.status == 200
            e = await resp.json()
        assert e["location"]["city"] == "São Paulo" and e["pick"] == ["saopaulo"]
        assert e["scope"] == 24 and e["ttl"] == 30
        async with http.get(url, params={"name": "www.cdn.example"}) as resp:
            assert resp.status == 404 and "not bound to a pool" in (await resp.json())["error"]
        async with http.get(url, params={"name": "edge.cdn.example", "ecs": "x"}) as resp:
            assert resp.status == 400


async def test_geoip_database_is_reloaded_with_the_zones(geo_server, tmp_path):
    assert members(geo_server.ask("edge.cdn.example", ecs="198.18.9.0/24")) == ["mumbai"]
    moved = tmp_path / "moved.csv"  # Singapore's test network moves to Sydney
    moved.write_text(DEMO_CSV.read_text().replace(
        "198.18.9.0/24,Singapore,SG,Singapore,AS,1.3521,103.8198",
        "198.18.9.0/24,Sydney,AU,Australia,OC,-33.8688,151.2093"))
    build(moved, tmp_path / "new.mmdb")
    shutil.copy(tmp_path / "new.mmdb", geo_server.db.with_suffix(".tmp"))
    geo_server.db.with_suffix(".tmp").replace(geo_server.db)  # atomic, like geoipupdate
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{geo_server.url}/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 200
    assert members(geo_server.ask("edge.cdn.example", ecs="198.18.9.0/24")) == ["sydney"]
    # A broken file on reload: the previous database keeps serving, and the reload's
    # answer, the log and the metrics say so, as for a bad zone file.
    (tmp_path / "garbage").write_bytes(b"garbage")
    (tmp_path / "garbage").replace(geo_server.db)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{geo_server.url}/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 422
            body = await resp.json()
        async with http.get(f"{geo_server.url}/metrics") as resp:
            text = await resp.text()
    assert not body["ok"] and body["zones"]["cdn.example."] > 0
    assert len(body["errors"]) == 1 and "GeoIP reload failed" in body["errors"][0]
    assert str(geo_server.db) in body["errors"][0]
    assert 'geodns_reloads_total{result="failed"} 1.0' in text
    assert "geodns_last_reload_success 0.0" in text
    assert members(geo_server.ask("edge.cdn.example", ecs="198.18.9.0/24")) == ["sydney"]
    assert "GeoIP reload failed" in geo_server.log.read_text()
    # A good file again: the next reload succeeds.
    shutil.copy(tmp_path / "new.mmdb", geo_server.db)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{geo_server.url}/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 200 and (await resp.json())["errors"] == []


def test_cname_chain_under_ecs_scopes_only_the_client_dependent_link(geo_server):
    # `chain` is a static CNAME to the pool-bound `edge` (example_zones adds it).
    r = geo_server.ask("chain.cdn.example", "A", ecs="198.18.5.0/24")
    assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME]  # the static link only
    assert scope(r) == 0  # ...cached for every client
    r = geo_server.ask("edge.cdn.example", "A", ecs="198.18.5.0/24")
    assert members(r) == ["saopaulo"] and scope(r) == 24  # the resolver's next question
    r = geo_server.ask("chain.cdn.example", "A")  # without ECS: the whole chain
    assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
