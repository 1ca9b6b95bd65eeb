"""Response rate limiting (BIND style, with slip) and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import dns.edns
import dns.flags
import dns.message
import pytest
from dnstest import start_geodns, zones_copy


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rrl")
    server = start_geodns(zones_copy(tmp), tmp, "--rrl-rate", "5", "--rrl-slip", "2",
                          wait="ns1.cdn.example")
    yield server
    server.stop()


LAST = 0xFFFF  # the id of the query that ends a burst


def proven_cookie(server) -> bytes:
    """A full cookie (client + server part) from geodns, which proves our address."""
    first = server.ask("ns1.cdn.example", "A", tcp=True, use_edns=0,
                       options=[dns.edns.GenericOption(dns.edns.COOKIE, b"prooflst")])
    (cookie,) = [o for o in first.options if o.otype == dns.edns.COOKIE]
    return cookie.client + cookie.server


def answers_to(server, queries: list[dns.message.Message]) -> list[dns.message.Message]:
    """Send `queries` back to back from one UDP socket, then a last one whose cookie
    proves our address (never limited). geodns answers datagrams in the order they
    came, so once the last answer is in, every answer to the others is too: no timeout
    decides what counts as dropped."""
    last = dns.message.make_query(
        "ns1.cdn.example", "A", id=LAST, use_edns=0,
        options=[dns.edns.GenericOption(dns.edns.COOKIE, proven_cookie(server))])
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(60)  # only bounds a hang
        s.connect(("127.0.0.1", server.port))
        for q in queries:
            s.send(q.to_wire())
        s.send(last.to_wire())
        while (r := dns.message.from_wire(s.recv(4096))).id != LAST:
            out.append(r)
    return out


def burst(server, name: str, count: int) -> tuple[int, int]:
    """Send `count` queries at once from one socket; (full answers, TC slips)."""
    replies = answers_to(server, [dns.message.make_query(name, "A", id=i)
                                  for i in range(count)])
    slips = [r for r in replies if r.flags & dns.flags.TC]
    assert not any(r.answer for r in slips)
    return len(replies) - len(slips), len(slips)


def test_rate_limit_with_slip(limited):
    full, slips = burst(limited, "www.cdn.example", 40)
    assert 5 <= full <= 7  # the bucket's credit (5/s), plus what a fraction of a second earns
    assert 14 <= slips <= 20  # every second limited response slips, the others are dropped
    full, _ = burst(limited, "mail.cdn.example", 3)  # another response: its own bucket
    assert full == 3
    r = limited.ask("www.cdn.example", "A", tcp=True)  # TCP is never limited
    assert r.answer


def test_valid_server_cookie_is_not_limited(limited):
    first = limited.ask("ns1.cdn.example", "A", use_edns=0,
                        options=[dns.edns.GenericOption(dns.edns.COOKIE, b"abcdefgh")])
    (cookie,) = [o for o in first.options if o.otype == dns.edns.COOKIE]
    full = cookie.client + cookie.server
    answered, _ = burst_with_cookie(limited, full)
    assert answered == 30
    # a forged server cookie earns nothing
    forged = full[:16] + bytes(8)
    _, slips = burst_with_cookie(limited, forged)
    assert slips > 0


def burst_with_cookie(server, cookie: bytes) -> tuple[int, int]:
    replies = answers_to(server, [
        dns.message.make_query("ns1.cdn.example", "A", id=i, use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.COOKIE, cookie)])
        for i in range(30)])
    return sum(bool(r.answer) for r in replies), sum(bool(r.flags & dns.flags.TC)
                                                    for r in replies)


def test_nxdomain_shares_one_bucket_per_zone(limited):
    replies = answers_to(limited, [dns.message.make_query(f"r{i}.cdn.example", "A", id=i)
                                   for i in range(30)])
    assert sum(not r.flags & dns.flags.TC for r in replies) <= 7


async def scrape(server) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.http + "/metrics") as resp:
            return await resp.text()


def sample(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def test_metrics(limited):
    before = await scrape(limited)
    for _ in range(3):
        limited.ask("ns2.cdn.example", "A", tcp=True)
        limited.ask("nope.cdn.example", "AAAA", tcp=True)
    limited.ask("medium.test.example", "A")  # truncated over UDP
    limited.ask("ns2.cdn.example", "A", use_edns=0,
                options=[dns.edns.ECSOption("198.51.100.0", 24)])
    await asyncio.sleep(0.1)
    after = await scrape(limited)
    tcp_a = 'geodns_queries_total{qtype="A",rcode="NOERROR",transport="tcp"}'
    assert sample(after, tcp_a) - sample(before, tcp_a) == 3
    nx = 'geodns_queries_total{qtype="AAAA",rcode="NXDOMAIN",transport="tcp"}'
    assert sample(after, nx) - sample(before, nx) == 3
    tc = 'geodns_truncated_responses_total{transport="udp"}'
    assert sample(after, tc) - sample(before, tc) == 1
    assert sample(after, "geodns_ecs_queries_total") - sample(before,
                                                              "geodns_ecs_queries_total") == 1
    assert sample(after, "geodns_rate_limited_responses_total") >= 20
    assert sample(after, 'geodns_zone_serial{zone="test.example."}') == 7
