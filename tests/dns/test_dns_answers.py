"""Authoritative answers over real UDP and TCP: AA, REFUSED, NXDOMAIN/NODATA with the
SOA and the RFC 2308 TTL, CNAME chains, referrals, wildcards, ANY, 0x20."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
from dnstest import rcode


def addresses(msg, name: str, rdtype: str = "A") -> set[str]:
    rrset = msg.find_rrset(msg.answer, dns.name.from_text(name), "IN", rdtype)
    return {r.to_text() for r in rrset}


def test_static_answer_is_authoritative(geodns, tcp):
    r = geodns.ask("www.cdn.example", "A", tcp=tcp)
    assert rcode(r) == "NOERROR"
    assert r.flags & dns.flags.AA
    assert not r.flags & dns.flags.RA
    assert addresses(r, "www.cdn.example.") == {"192.0.2.10", "192.0.2.11"}
    assert r.answer[0].ttl == 60


def test_each_record_type(geodns, tcp):
    expect = {
        ("cdn.example", "MX"): "10 mail.cdn.example.",
        ("cdn.example", "TXT"): '"v=spf1 -all"',
        ("cdn.example", "CAA"): '0 issue "letsencrypt.org"',
        ("_http._tcp.www.cdn.example", "SRV"): "10 5 80 www.cdn.example.",
        ("10.2.0.192.in-addr.cdn.example", "PTR"): "www.cdn.example.",
        ("www.cdn.example", "AAAA"): "2001:db8::10",
        ("ns1.cdn.example", "AAAA"): "::1",
    }
    for (name, rdtype), text in expect.items():
        r = geodns.ask(name, rdtype, tcp=tcp)
        assert [x.to_text() for x in r.answer[0]] == [text], (name, rdtype)
        assert r.answer[0].ttl == 300
    soa = geodns.ask("cdn.example", "SOA", tcp=tcp).answer[0][0]
    assert soa.serial == 2026112201 and soa.minimum == 60


def test_additional_section_for_ns_and_mx(geodns, tcp):
    r = geodns.ask("cdn.example", "NS", tcp=tcp)
    glue = {(x.name.to_text(), x.rdtype) for x in r.additional if x.rdtype != 41}
    assert ("ns1.cdn.example.", dns.rdatatype.A) in glue
    assert ("ns1.cdn.example.", dns.rdatatype.AAAA) in glue
    assert ("ns2.cdn.example.", dns.rdatatype.A) in glue
    r = geodns.ask("test.example", "MX", tcp=tcp)
    assert {x.name.to_text() for x in r.additional} == {"mail.test.example."}


def test_refused_outside_our_zones(geodns, tcp):
    r = geodns.ask("www.example.org", "A", tcp=tcp)
    assert rcode(r) == "REFUSED"
    assert not r.flags & dns.flags.AA
    assert not r.answer


def test_nxdomain_with_soa_and_negative_ttl(geodns, tcp):
    r = geodns.ask("nope.cdn.example", "A", tcp=tcp)
    assert rcode(r) == "NXDOMAIN" and r.flags & dns.flags.AA
    assert not r.answer
    (soa,) = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "cdn.example."
    assert soa.ttl == 60  # min(SOA TTL 300, minimum 60)
    r = geodns.ask("nope.test.example", "A", tcp=tcp)
    assert r.authority[0].ttl == 120  # min(SOA TTL 600, minimum 120)


def test_nodata_and_empty_non_terminal(geodns, tcp):
    for name, rdtype in [("www.cdn.example", "MX"), ("b.c.test.example", "A"),
                         ("c.test.example", "TXT"), ("static.cdn.example", "A")]:
        r = geodns.ask(name, rdtype, tcp=tcp)
        assert rcode(r) == "NOERROR", name
        assert not r.answer and r.flags & dns.flags.AA
        assert r.authority[0].rdtype == dns.rdatatype.SOA


def test_cname_chasing_inside_the_zone(geodns, tcp):
    r = geodns.ask("chain1.test.example", "A", tcp=tcp)
    assert [(x.name.to_text(), x.rdtype) for x in r.answer] == [
        ("chain1.test.example.", dns.rdatatype.CNAME),
        ("chain2.test.example.", dns.rdatatype.CNAME),
        ("www.test.example.", dns.rdatatype.A),
    ]
    r = geodns.ask("api.cdn.example", "CNAME", tcp=tcp)  # asked for the CNAME itself
    assert len(r.answer) == 1 and r.answer[0].rdtype == dns.rdatatype.CNAME
    r = geodns.ask("dangling.test.example", "A", tcp=tcp)  # chain ends in NXDOMAIN
    assert rcode(r) == "NXDOMAIN" and r.answer[0].rdtype == dns.rdatatype.CNAME
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    r = geodns.ask("out.test.example", "A", tcp=tcp)  # out of zone: not followed
    assert rcode(r) == "NOERROR" and len(r.answer) == 1


def test_referral_with_glue_and_aa_clear(geodns, tcp):
    for name in ["host.sub.test.example", "sub.test.example", "deep.x.sub.test.example"]:
        r = geodns.ask(name, "A", tcp=tcp)
        assert rcode(r) == "NOERROR" and not r.answer
        assert not r.flags & dns.flags.AA
        (ns,) = r.authority
        assert ns.rdtype == dns.rdatatype.NS and ns.name.to_text() == "sub.test.example."
        assert {x.target.to_text() for x in ns} == {"ns.sub.test.example.", "ns.other.example."}
        glue = [x for x in r.additional if x.rdtype == dns.rdatatype.A]
        assert glue[0].name.to_text() == "ns.sub.test.example."
    r = geodns.ask("lab.cdn.example", "NS", tcp=tcp)
    assert r.authority[0].name.to_text() == "lab.cdn.example." and not r.flags & dns.flags.AA


def test_wildcards(geodns, tcp):
    r = geodns.ask("anything.static.cdn.example", "A", tcp=tcp)
    assert addresses(r, "anything.static.cdn.example.") == {"192.0.2.80"}
    assert r.flags & dns.flags.AA
    r = geodns.ask("a.b.any.test.example", "A", tcp=tcp)  # several labels below the *
    assert addresses(r, "a.b.any.test.example.") == {"192.0.2.7"}
    r = geodns.ask("x.static.cdn.example", "TXT", tcp=tcp)
    assert r.answer[0][0].strings == (b"served by the wildcard",)
    r = geodns.ask("x.static.cdn.example", "MX", tcp=tcp)  # wildcard NODATA
    assert rcode(r) == "NOERROR" and not r.answer
    r = geodns.ask("z.wild.test.example", "A", tcp=tcp)  # a wildcard CNAME, chased
    assert [x.rdtype for x in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert r.answer[0].name.to_text() == "z.wild.test.example."
    r = geodns.ask("www.test.example", "A", tcp=tcp)  # existing names are not covered
    assert addresses(r, "www.test.example.") == {"192.0.2.1"}


def test_any_gets_one_rrset_never_empty(geodns, tcp):
    r = geodns.ask("cdn.example", "ANY", tcp=tcp)
    assert rcode(r) == "NOERROR" and len(r.answer) == 1
    r = geodns.ask("www.cdn.example", "ANY", tcp=tcp)
    assert len(r.answer) == 1 and r.answer[0].rdtype == dns.rdatatype.A
    r = geodns.ask("edge.cdn.example", "ANY", tcp=tcp)  # a pool-bound name
    assert len(r.answer) == 1 and r.answer[0].rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA,
                                                         dns.rdatatype.HINFO)


def test_question_case_is_echoed(geodns, tcp):
    for name in ["WwW.CdN.ExAmPlE.", "www.cdn.EXAMPLE.", "NoPe.CDN.example.", "WWW.example.ORG."]:
        q = dns.message.make_query(name, "A")
        r = geodns.query(q, tcp=tcp)  # dnspython checks that the question matches
        assert r.question[0].name.to_text() == name
        raw = q.to_wire()
        wire = geodns.query(q, tcp=tcp).to_wire()
        assert name.split(".")[0].encode() in wire and raw[12:30] == wire[12:30]


def test_pool_name_answers_from_steering(geodns, tcp):
    r = geodns.ask("edge.cdn.example", "A", tcp=tcp)
    assert rcode(r) == "NOERROR" and r.flags & dns.flags.AA
    got = addresses(r, "edge.cdn.example.")
    assert got and got <= {f"127.0.1.{i}" for i in range(1, 8)}
    r = geodns.ask("edge.cdn.example", "MX", tcp=tcp)  # other types: NODATA
    assert rcode(r) == "NOERROR" and not r.answer and r.authority[0].rdtype == 6


def test_chaos_id_server_and_class_checks(geodns, tcp):
    for name in ["id.server.", "hostname.bind."]:
        r = geodns.ask(name, "TXT", tcp=tcp, rdclass="CH")
        assert r.answer[0][0].strings == (b"test-node",)
    assert rcode(geodns.ask("version.bind.", "TXT", tcp=tcp, rdclass="CH")) == "REFUSED"
    assert rcode(geodns.ask("www.cdn.example.", "A", tcp=tcp, rdclass="HS")) == "REFUSED"


def test_zone_transfer_refused(geodns):
    assert rcode(geodns.ask("cdn.example", "AXFR", tcp=True)) == "REFUSED"


def test_ipv6_listener(geodns, tcp):
    q = dns.message.make_query("www.cdn.example", "AAAA")
    if tcp:
        r = dns.query.tcp(q, "::1", port=geodns.port, timeout=30)
    else:
        r = dns.query.udp(q, "::1", port=geodns.port, timeout=30)
    assert [x.to_text() for x in r.answer[0]] == ["2001:db8::10"]


def steered(server, source: str, tcp: bool, ecs: str | None = None) -> str:
    options = [dns.edns.ECSOption(ecs, 24)] if ecs else None
    q = dns.message.make_query("steered.test.example", "A", use_edns=0 if ecs else None,
                               options=options)
    query = dns.query.tcp if tcp else dns.query.udp
    r = query(q, "127.0.0.1", port=server.port, timeout=30, source=source)
    (rrset,) = r.answer
    return rrset[0].to_text()


def test_pool_answers_are_cached_per_client_network(geodns, tcp):
    # Without ECS the source network decides: the cache must keep one answer per /24.
    for _ in range(3):
        assert steered(geodns, "127.0.2.1", tcp) == "10.0.0.1"
        assert steered(geodns, "127.0.3.1", tcp) == "10.0.0.2"
        assert steered(geodns, "127.0.2.77", tcp) == "10.0.0.1"
    # With ECS the ECS network decides, whoever sends it.
    for source in ("127.0.2.1", "127.0.3.1"):
        assert steered(geodns, source, tcp, ecs="198.51.100.0") == "10.0.0.2"
        assert steered(geodns, source, tcp, ecs="203.0.113.0") == "10.0.0.1"
