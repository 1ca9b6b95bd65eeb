"""EDNS0 (RFC 6891), Client Subnet (RFC 7871), cookies (RFC 7873), NSID (RFC 5001),
header checks (FORMERR, NOTIMP) and truncation, over real UDP and TCP."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
from dnstest import raw, rcode

ECS_V4 = dns.edns.ECSOption("198.51.100.0", 24)


def test_opt_iff_in_query(geodns, tcp):
    r = geodns.ask("www.cdn.example", "A", tcp=tcp)  # dnspython sends no EDNS by default
    assert r.edns == -1
    r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0, payload=4096)
    assert r.edns == 0 and r.payload == 1232
    r = geodns.ask("nope.example.org", "A", tcp=tcp, use_edns=0)  # errors too
    assert rcode(r) == "REFUSED" and r.edns == 0


def test_badvers(geodns, tcp):
    q = dns.message.make_query("www.cdn.example", "A", use_edns=0)
    wire = bytearray(q.to_wire())
    wire[-5] = 1  # OPT TTL = extended rcode, VERSION, flags: VERSION=1
    r = dns.message.from_wire(raw(geodns, bytes(wire), tcp))
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0 and not r.answer


def test_two_opts_is_formerr(geodns, tcp):
    q = dns.message.make_query("www.cdn.example", "A", use_edns=0)
    wire = bytearray(q.to_wire())
    opt = bytes(wire[-11:])
    wire[10:12] = b"\x00\x02"
    r = dns.message.from_wire(raw(geodns, bytes(wire) + opt, tcp))
    assert rcode(r) == "FORMERR"


def test_unknown_options_are_ignored(geodns, tcp):
    opt = dns.edns.GenericOption(65001, b"hello")
    r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0, options=[opt])
    assert rcode(r) == "NOERROR" and len(r.answer[0]) == 2
    assert not [o for o in r.options if o.otype == 65001]


def test_truncation_never_splits_an_rrset(geodns):
    r = geodns.ask("medium.test.example", "A")  # 40 A records: 512 is too small
    assert r.flags & dns.flags.TC and not r.answer
    r = geodns.ask("medium.test.example", "A", use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 40
    r = geodns.ask("medium.test.example", "A", use_edns=0, payload=600)
    assert r.flags & dns.flags.TC and not r.answer and r.edns == 0
    r = geodns.ask("big.test.example", "TXT", use_edns=0, payload=4096)  # over our 1232
    assert r.flags & dns.flags.TC and not r.answer
    r = geodns.ask("big.test.example", "TXT", tcp=True, use_edns=0)  # TCP carries it all
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 10


def test_additional_dropped_before_truncating(geodns):
    r = geodns.ask("cdn.example", "NS", use_edns=0, payload=512)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 2


def test_ecs_echo_and_scope_zero_for_static(geodns, tcp):
    r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0, options=[ECS_V4])
    (ecs,) = [o for o in r.options if isinstance(o, dns.edns.ECSOption)]
    assert (ecs.family, ecs.srclen, ecs.scopelen, ecs.address) == (1, 24, 0, "198.51.100.0")
    v6 = dns.edns.ECSOption("2001:db8:1::", 48)
    r = geodns.ask("www.cdn.example", "AAAA", tcp=tcp, use_edns=0, options=[v6])
    (ecs,) = [o for o in r.options if isinstance(o, dns.edns.ECSOption)]
    assert (ecs.family, ecs.srclen, ecs.scopelen, ecs.address) == (2, 48, 0, "2001:db8:1::")
    r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0)  # none asked, none given
    assert not [o for o in r.options if o.otype == dns.edns.ECS]


def test_ecs_on_pool_name_is_echoed(geodns, tcp):
    r = geodns.ask("edge.cdn.example", "A", tcp=tcp, use_edns=0, options=[ECS_V4])
    (ecs,) = [o for o in r.options if isinstance(o, dns.edns.ECSOption)]
    assert (ecs.family, ecs.srclen, ecs.address) == (1, 24, "198.51.100.0")
    assert 0 <= ecs.scopelen <= 32


def _ecs_query(payload: bytes) -> bytes:
    opt = dns.edns.GenericOption(dns.edns.ECS, payload)
    return dns.message.make_query("www.cdn.example", "A", use_edns=0, options=[opt]).to_wire()


def test_malformed_ecs_is_formerr(geodns, tcp):
    bad = {
        "unknown family": struct.pack("!HBB", 3, 24, 0) + bytes(3),
        "prefix too long v4": struct.pack("!HBB", 1, 33, 0) + bytes(5),
        "prefix too long v6": struct.pack("!HBB", 2, 129, 0) + bytes(17),
        "scope set in query": struct.pack("!HBB", 1, 24, 8) + bytes(3),
        "address too long": struct.pack("!HBB", 1, 16, 0) + bytes(3),
        "address too short": struct.pack("!HBB", 1, 24, 0) + bytes(2),
        "bits past the prefix": struct.pack("!HBB", 1, 20, 0) + b"\x0a\x00\x01",
        "truncated option": b"\x00\x01\x18",
    }
    for why, payload in bad.items():
        r = dns.message.from_wire(raw(geodns, _ecs_query(payload), tcp))
        assert rcode(r) == "FORMERR", why
        assert r.edns == 0, why
    ok = struct.pack("!HBB", 1, 0, 0)  # SOURCE 0: the client opts out; legal
    r = dns.message.from_wire(raw(geodns, _ecs_query(ok), tcp))
    assert rcode(r) == "NOERROR"


def test_cookies(geodns, tcp):
    client = bytes.fromhex("0102030405060708")
    r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0,
                   options=[dns.edns.GenericOption(dns.edns.COOKIE, client)])
    (cookie,) = [o for o in r.options if o.otype == dns.edns.COOKIE]
    data = cookie.to_wire() if hasattr(cookie, "to_wire") else b""
    data = cookie.client + cookie.server if hasattr(cookie, "client") else data
    assert data[:8] == client and len(data) == 24 and data[8] == 1  # RFC 9018 layout
    again = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0,
                       options=[dns.edns.GenericOption(dns.edns.COOKIE, data)])
    assert rcode(again) == "NOERROR"
    for other in (b"AAAAAAAA", b"BBBBBBBB"):  # later ones come from the cookie cache
        r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0,
                       options=[dns.edns.GenericOption(dns.edns.COOKIE, other)])
        (cookie,) = [o for o in r.options if o.otype == dns.edns.COOKIE]
        assert cookie.client == other and len(cookie.server) == 16
        assert {x.to_text() for x in r.answer[0]} == {"192.0.2.10", "192.0.2.11"}
    for size in (7, 9, 15, 41):
        q = dns.message.make_query("www.cdn.example", "A", use_edns=0,
                                   options=[dns.edns.GenericOption(dns.edns.COOKIE,
                                                                   bytes(size))])
        r = dns.message.from_wire(raw(geodns, q.to_wire(), tcp))
        assert rcode(r) == "FORMERR", size


def test_cookie_only_query(geodns, tcp):
    q = dns.message.make_query("www.cdn.example", "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.COOKIE, bytes(8))])
    wire = bytearray(q.to_wire())
    qlen = len(b"\x03www\x03cdn\x07example\x00") + 4
    del wire[12 : 12 + qlen]
    wire[4:6] = b"\x00\x00"
    out = raw(geodns, bytes(wire), tcp)
    assert out[3] & 0x0F == 0 and out[4:6] == b"\x00\x00"  # NOERROR, no question
    assert b"\x00\x0a\x00\x18" in out  # a 24-octet cookie option


def test_nsid(geodns, tcp):
    r = geodns.ask("www.cdn.example", "A", tcp=tcp, use_edns=0,
                   options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    (nsid,) = [o for o in r.options if o.otype == dns.edns.NSID]
    assert nsid.to_wire() == b"test-node"


def test_notimp_for_other_opcodes(geodns, tcp):
    for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS, 3):
        q = dns.message.make_query("cdn.example", "SOA")
        q.set_opcode(opcode)
        r = dns.message.from_wire(raw(geodns, q.to_wire(), tcp))
        assert rcode(r) == "NOTIMP" and r.opcode() == opcode


def test_formerr_for_malformed_queries(geodns, tcp):
    good = dns.message.make_query("www.cdn.example", "A").to_wire()
    cases = {
        "two questions": good[:4] + b"\x00\x02" + good[6:] + good[12:],
        "answer count": good[:6] + b"\x00\x01" + good[8:],
        "truncated question": good[:-3],
        "trailing garbage": good + b"\x00",
        "compression pointer in question": good[:12] + b"\xc0\x0c" + good[-4:],
        "no question": good[:4] + b"\x00\x00" + good[6:12],
        "label runs past the end": good[:12] + b"\x3f\x61\x62",
    }
    for why, wire in cases.items():
        out = raw(geodns, wire, tcp)
        assert out[:2] == wire[:2], why
        assert out[2] & 0x80 and out[3] & 0x0F == dns.rcode.FORMERR, why


def test_responses_and_short_packets_are_dropped(geodns):
    good = dns.message.make_query("www.cdn.example", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        for wire in (b"\x12", good[:11], good[:2] + bytes([good[2] | 0x80]) + good[3:]):
            s.sendto(wire, ("127.0.0.1", geodns.port))
            try:
                s.recv(65535)
                raise AssertionError(f"answered {wire!r}")
            except TimeoutError:
                pass
