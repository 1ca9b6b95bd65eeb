"""No byte string crashes or hangs the server: fuzz the query path with hypothesis,
directly on the engine and over real UDP and TCP, and check it keeps answering."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dns.message
from dnstest import ROOT, TEST_ZONES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodns.cookies import CookieJar
from geodns.engine import Engine
from geodns.metrics import Tally
from geodns.rrl import RateLimiter, RRLConfig
from geodns.zonefile import load_zones

SEEDS = [dns.message.make_query(n, t, use_edns=0, options=o).to_wire() for n, t, o in [
    ("www.cdn.example", "A", []),
    ("edge.cdn.example", "A", [dns.edns.ECSOption("198.51.100.0", 24)]),
    ("x.lab.cdn.example", "AAAA", [dns.edns.GenericOption(10, bytes(8))]),
    ("big.test.example", "TXT", [dns.edns.GenericOption(3, b"")]),
]]


def engine(rrl: bool = False) -> Engine:
    zones = {}
    for d in (ROOT / "zones", Path(TEST_ZONES)):
        zones.update(load_zones(d)[0])
    limiter = RateLimiter(RRLConfig(rate=5)) if rrl else None
    e = Engine(b"fuzz", CookieJar(), limiter, Tally())
    e.set_zones(zones)
    return e


mutated = st.tuples(st.sampled_from(SEEDS), st.integers(0, 200), st.binary(max_size=8),
                    st.integers(0, 8)).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + t[3]:])
packets = st.one_of(st.binary(max_size=600), mutated)
ENGINES = [engine(), engine(rrl=True)]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=packets, tcp=st.booleans())
def test_engine_answers_any_bytes(data, tcp):
    for e in ENGINES:
        out = e.udp(data, ("127.0.0.1", 5353)) if not tcp else \
            e.handle(data, ("127.0.0.1", 5353), tcp=True)
        if out is None:
            continue
        assert out[:2] == data[:2] and out[2] & 0x80  # our ID, a response
        assert len(out) <= (65535 if tcp else 1232)
        if (data[2] >> 3) & 0xF:  # other opcodes: NOTIMP (dnspython reads UPDATE its own way)
            assert out[3] & 0x0F == 4
        else:
            dns.message.from_wire(out)  # a well-formed message


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=packets)
def test_server_survives_fuzz_over_udp_and_tcp(geodns, data):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data or b"\x00", ("127.0.0.1", geodns.port))
    with socket.create_connection(("127.0.0.1", geodns.port), timeout=30) as s:
        s.sendall(struct.pack("!H", len(data)) + data)
        s.settimeout(2)
        try:
            s.recv(65535)
        except (TimeoutError, ConnectionResetError):
            pass


def test_still_answering_after_fuzz(geodns):
    for tcp in (False, True):
        r = geodns.ask("www.cdn.example", "A", tcp=tcp)
        assert {x.to_text() for x in r.answer[0]} == {"192.0.2.10", "192.0.2.11"}
    assert geodns.proc.poll() is None
    assert "internal error" not in geodns.logs()
