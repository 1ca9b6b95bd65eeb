"""Protocol details an attacker or a strict resolver notices: OPT in every FORMERR to
a query with OPT (RFC 6891 §6.1.1), DO kept in BADVERS, no RD/CD echoed under other
opcodes, NOTAUTH/BADKEY for TSIG-signed queries (RFC 8945 §5.2), and no host name
given away as NSID or id.server unless configured."""

from __future__ import annotations

import socket

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import pytest
from dnstest import raw, rcode, start_geodns, zones_copy


def test_formerr_carries_opt_whatever_qdcount(geodns, tcp):
    q = dns.message.make_query("www.cdn.example", "A", use_edns=0)
    wire = q.to_wire()
    question = wire[12 : wire.index(b"\x00\x00\x29")]  # up to the OPT record
    two = wire[:4] + b"\x00\x02" + wire[6:12] + question + question + wire[12 + len(question):]
    none = wire[:4] + b"\x00\x00" + wire[6:12] + wire[12 + len(question):]
    for why, query in {"QDCOUNT 2": two, "QDCOUNT 0": none}.items():
        r = dns.message.from_wire(raw(geodns, query, tcp))
        assert r.rcode() == dns.rcode.FORMERR and r.edns == 0, why
    without_opt = dns.message.make_query("www.cdn.example", "A").to_wire()
    two = without_opt[:4] + b"\x00\x02" + without_opt[6:] + without_opt[12:]
    r = dns.message.from_wire(raw(geodns, two, tcp))
    assert r.rcode() == dns.rcode.FORMERR and r.edns == -1  # no OPT asked, none sent


def test_badvers_keeps_do(geodns, tcp):
    q = dns.message.make_query("www.cdn.example", "A", use_edns=0, want_dnssec=True)
    wire = bytearray(q.to_wire())
    wire[-5] = 1  # OPT TTL = extended rcode, VERSION, flags: VERSION=1
    r = dns.message.from_wire(raw(geodns, bytes(wire), tcp))
    assert r.rcode() == dns.rcode.BADVERS and r.ednsflags & dns.flags.DO


def test_notimp_echoes_no_rd_or_cd(geodns, tcp):
    for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, 3):
        q = dns.message.make_query("cdn.example", "SOA")
        q.set_opcode(opcode)
        q.flags |= dns.flags.RD | dns.flags.CD
        r = dns.message.from_wire(raw(geodns, q.to_wire(), tcp))
        assert rcode(r) == "NOTIMP" and r.opcode() == opcode
        assert not r.flags & (dns.flags.RD | dns.flags.CD)
    q = dns.message.make_query("cdn.example", "SOA")  # a standard query keeps them
    q.flags |= dns.flags.RD | dns.flags.CD
    r = geodns.query(q, tcp=tcp)
    assert r.flags & dns.flags.RD and r.flags & dns.flags.CD


def test_tsig_from_an_unknown_key_is_notauth_badkey(geodns, tcp):
    keyring = dns.tsigkeyring.from_text({"stranger.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    q = dns.message.make_query("www.cdn.example", "A")
    q.use_tsig(keyring, keyname="stranger.")
    wire = q.to_wire()
    out = raw(geodns, wire, tcp)
    assert out[:2] == wire[:2] and out[3] & 0x0F == dns.rcode.NOTAUTH
    # dnspython reads the unsigned TSIG record of the answer as the server's BADKEY
    send = dns.query.tcp if tcp else dns.query.udp
    with pytest.raises(dns.tsig.PeerBadKey):
        send(q, "127.0.0.1", port=geodns.port, timeout=30)


@pytest.fixture(scope="module")
def anonymous(tmp_path_factory):
    """A server started without --nsid."""
    tmp = tmp_path_factory.mktemp("anonymous")
    server = start_geodns(zones_copy(tmp), tmp)
    yield server
    server.stop()


def test_no_host_name_as_nsid_or_id_server(anonymous, tcp):
    r = anonymous.ask("www.cdn.example", "A", tcp=tcp, use_edns=0,
                      options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    assert rcode(r) == "NOERROR" and not [o for o in r.options if o.otype == dns.edns.NSID]
    for name in ("id.server", "hostname.bind"):
        r = anonymous.query(dns.message.make_query(name, "TXT", rdclass="CH"), tcp=tcp)
        assert rcode(r) == "REFUSED" and not r.answer
    assert socket.gethostname().encode() not in raw(
        anonymous, dns.message.make_query("id.server", "TXT", rdclass="CH").to_wire(), tcp)
