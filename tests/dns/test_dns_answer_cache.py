"""The answer caches over real UDP: cookie-bearing queries (pool names too, with and
without ECS) answered from the cache with each client's own server cookie; padding
and unknown options ignored; memory bounded by --answer-cache under large padded
queries."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import dns.edns
import dns.message
import pytest
from dnstest import start_geodns, zones_copy

from geodns.cookies import CookieJar
from geodns.engine import Engine
from geodns.metrics import Tally
from geodns.zonefile import load_zones

SECRET = "0123456789abcdef0123456789abcdef"
TOKYO_ECS = dns.edns.ECSOption("203.0.113.0", 24)
LONDON_ECS = dns.edns.ECSOption("198.51.100.0", 24)
PADDING = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("answer-cache")
    s = start_geodns(zones_copy(tmp), tmp, "--cookie-secret", SECRET, "--answer-cache", "1")
    yield s
    s.stop()


def udp(server, wire: bytes, source: str = "127.0.0.1") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(3)
        s.sendto(wire, (server.host, server.port))
        return s.recv(65535)


def query(name: str, options: list, qid: int = 1) -> bytes:
    q = dns.message.make_query(name, "A", use_edns=0, options=options)
    q.id = qid
    return q.to_wire(max_size=65535)


def cookie_of(wire: bytes) -> bytes:
    r = dns.message.from_wire(wire)
    (opt,) = [o for o in r.options if o.otype == dns.edns.COOKIE]
    return opt.client + opt.server


def addresses(wire: bytes) -> set[str]:
    return {rd.to_text() for rrset in dns.message.from_wire(wire).answer for rd in rrset}


@pytest.mark.parametrize("name, ecs, source, expected", [
    ("steered.test.example", [TOKYO_ECS], "127.0.0.1", "10.0.0.1"),
    ("steered.test.example", [LONDON_ECS], "127.0.0.1", "10.0.0.2"),
    ("steered.test.example", [], "127.0.2.1", "10.0.0.1"),  # nets: 127.0.2.0/24 is Tokyo
    ("steered.test.example", [], "127.0.3.1", "10.0.0.2"),  # and 127.0.3.0/24 London
    ("www.test.example", [], "127.0.0.1", "192.0.2.1"),
])
def test_cookie_queries_answered_alike(server, name, ecs, source, expected):
    jar = CookieJar(bytes.fromhex(SECRET))
    plain = udp(server, query(name, ecs, qid=7), source)
    assert addresses(plain) == {expected}
    seen, first = set(), {}
    for i, client in enumerate([b"client-1", b"client-2", b"client-1", b"client-3"]):
        out = udp(server, query(name, [*ecs, dns.edns.GenericOption(10, client)], qid=i),
                  source)
        value = cookie_of(out)
        assert value[:8] == client and jar.valid(value, source)
        # from the cache (after the first), the same octets but for the ID and the
        # server cookie's timestamp and hash
        assert first.setdefault(client, out)[2:-12] == out[2:-12]
        # the same response as without a cookie, but for the cookie option
        r, p = dns.message.from_wire(out), dns.message.from_wire(plain)
        assert r.answer == p.answer and r.flags == p.flags and r.id == i
        assert [o for o in r.options if o.otype != 10] == list(p.options)  # ECS scope too
        # a resolver's next query carries our server cookie back: the same answer
        again = udp(server, query(name, [*ecs, dns.edns.GenericOption(10, value)], qid=99),
                    source)
        assert addresses(again) == {expected} and cookie_of(again)[:8] == client
        seen.add(value)
    assert len({v[:8] for v in seen}) == 3


def test_cookie_anywhere_padding_and_unknown_options(server):
    name = "steered.test.example"
    want = addresses(udp(server, query(name, [TOKYO_ECS])))
    for options in (
        [dns.edns.GenericOption(10, b"cookie-1"), TOKYO_ECS],  # cookie first
        [TOKYO_ECS, dns.edns.GenericOption(PADDING, bytes(400))],
        [dns.edns.GenericOption(65001, b"x" * 50), TOKYO_ECS,
         dns.edns.GenericOption(10, b"cookie-2"), dns.edns.GenericOption(PADDING, bytes(9))],
    ):
        out = udp(server, query(name, options))
        r = dns.message.from_wire(out)
        assert addresses(out) == want and r.rcode() == 0
        assert not [o for o in r.options if o.otype in (PADDING, 65001)]
    # malformed cookies are still FORMERR, whatever else the query holds
    for bad in (bytes(7), bytes(41)):
        wire = query(name, [TOKYO_ECS, dns.edns.GenericOption(10, bad)])
        assert dns.message.from_wire(udp(server, wire)).rcode() == 1


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_padded_queries_keep_memory_bounded(server):
    """3,000 queries of 60 KB of padding, each a different name: before the caches were
    keyed without padding and bounded in bytes, this grew the server by ~170 MiB."""
    rng = random.Random(11)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)

        def burst(count: int) -> None:
            for i in range(count):
                label = "".join(rng.choice("abcdefghij") for _ in range(12))
                wire = query(f"{label}.any.test.example",
                             [dns.edns.GenericOption(PADDING, bytes(60_000))], qid=i)
                s.sendto(wire, (server.host, server.port))
                assert dns.message.from_wire(s.recv(65535)).id == i

        burst(300)
        before = rss_kib(server.proc.pid)
        burst(3_000)
        grown_mib = (rss_kib(server.proc.pid) - before) / 1024
    assert grown_mib < 24, f"RSS grew by {grown_mib:.0f} MiB"


def test_caches_bounded_in_bytes():
    """The engine charges every entry and starts over past its budget, whatever keys
    (here 3,000 different names with large answers: over ten times the budget) a
    stream brings."""
    zones = load_zones(Path(__file__).parent / "zones")[0]
    budget = 256 * 1024
    engine = Engine(b"test", CookieJar(), None, Tally(), max_cache_bytes=budget)
    engine.set_zones(zones)
    peak = starts_over = last = 0
    for i in range(3_000):
        name = f"n{i}-{os.urandom(4).hex()}.any.test.example"
        assert engine.udp(query(name, [dns.edns.GenericOption(10, b"abcdefgh")]),
                          ("127.0.0.1", 5353)) is not None
        assert engine.udp(query(name, []), ("127.0.0.1", 5353)) is not None
        starts_over += engine.cache_bytes < last
        last = engine.cache_bytes
        peak = max(peak, engine.cache_bytes)
    assert 0 < peak <= budget
    assert starts_over >= 10  # the budget was reached again and again


def test_one_entry_whatever_the_cookie_padding_and_option_order():
    """Queries that differ only in their cookie, padding and option order share a cache
    entry: plain queries one, cookie-bearing ones one per cookie length (a client cookie
    alone, or with a server cookie: the key holds the option's header)."""
    engine = Engine(b"test", CookieJar(), None, Tally())
    engine.set_zones(load_zones(Path(__file__).parent / "zones")[0])
    name, ecs = "steered.test.example", TOKYO_ECS
    variants = [
        [ecs, dns.edns.GenericOption(10, b"cookie-1")],
        [dns.edns.GenericOption(10, b"cookie-2" + bytes(16)), dns.edns.GenericOption(12, b""),
         ecs],
        [dns.edns.GenericOption(12, bytes(100)), ecs, dns.edns.GenericOption(10, b"cookie-3")],
    ]
    plain = [[ecs], [dns.edns.GenericOption(12, bytes(33)), ecs]]
    for options in variants + plain:
        for qid in range(3):
            out = engine.udp(query(name, options, qid), ("127.0.0.1", 5353))
            assert out is not None and addresses(out) == {"10.0.0.1"}
    assert len(engine.cookied.pools) == 2 and len(engine.plain.pools) == 1
