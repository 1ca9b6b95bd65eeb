"""Query names with any octet in a label: each is answered (or refused) for exactly
the name asked, echoed octet for octet (no IDNA rewriting), and a dot inside a
label (`www\\.cdn.example`) is not a label boundary."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdatatype
import pytest
from dnstest import rcode


def name(*labels: bytes) -> dns.name.Name:
    return dns.name.Name([*labels, b""])


def ask(geodns, qname: dns.name.Name, tcp: bool, rdtype: str = "A") -> dns.message.Message:
    r = geodns.query(dns.message.make_query(qname, rdtype), tcp=tcp)
    assert r.question[0].name.labels == qname.labels  # the question, octet for octet
    return r


@pytest.mark.parametrize("octet", range(256))
def test_every_octet_under_a_wildcard(geodns, octet):
    qname = name(b"x" + bytes([octet]) + b"Y", b"wild", b"test", b"example")
    r = ask(geodns, qname, tcp=octet % 2 == 1)
    assert rcode(r) == "NOERROR"
    assert r.answer[0].rdtype == dns.rdatatype.CNAME
    assert r.answer[0].name.labels == qname.labels  # the owner is the name asked
    assert [x.to_text() for x in r.answer[1]] == ["192.0.2.1"]


@pytest.mark.parametrize("label", [b"\x80", b"\xff", b"\xc9", b"caf\xc3\xa9", b"a b",
                                   b"\\", b"\x00", b"xn--"])
def test_unknown_names_with_odd_octets(geodns, label, tcp):
    r = ask(geodns, name(label, b"cdn", b"example"), tcp)
    assert rcode(r) == "NXDOMAIN" and not r.answer
    assert r.authority[0].name.to_text() == "cdn.example."
    r = ask(geodns, name(label, b"example"), tcp)  # no zone of ours
    assert rcode(r) == "REFUSED"


def test_escaped_dot_is_not_a_label_boundary(geodns, tcp):
    assert [x.to_text() for x in ask(geodns, name(b"www", b"cdn", b"example"), tcp).answer[0]]
    # one label "www.cdn" under example.: not our zone at all
    r = ask(geodns, dns.name.from_text("www\\.cdn.example."), tcp)
    assert rcode(r) == "REFUSED" and not r.answer
    # one label "www.x" in cdn.example: no such name
    r = ask(geodns, name(b"www.x", b"cdn", b"example"), tcp)
    assert rcode(r) == "NXDOMAIN" and not r.answer
    # "a.b" under a wildcard: synthesized for that one label, owner as asked
    qname = name(b"a.b", b"wild", b"test", b"example")
    r = ask(geodns, qname, tcp)
    assert r.answer[0].name.labels == qname.labels
    # a.b.c exists; "a.b" + "c" is another name (its "a.b" label is no node)
    r = ask(geodns, name(b"a.b", b"c", b"test", b"example"), tcp)
    assert rcode(r) == "NXDOMAIN"


def test_no_traceback_after_odd_names(geodns):
    assert "Traceback" not in geodns.logs() and "internal error" not in geodns.logs()
