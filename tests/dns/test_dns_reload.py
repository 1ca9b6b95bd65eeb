"""Reload without restart (HTTP and SIGHUP, one worker and several), a bad file keeps
the old zones serving, and the metrics and logs show what happened."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import dns.edns
import dns.message
import dns.query
import dns.rcode
from dnstest import ADMIN, start_geodns, zones_copy


def www(server, **kw) -> set[str]:
    r = server.ask("www.cdn.example", "A", **kw)
    return {x.to_text() for x in r.answer[0]}


def edit(zones, old: str, new: str) -> None:
    path = zones / "cdn.example.yaml"
    path.write_text(path.read_text().replace(old, new))


async def post_reload(server) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.http + "/admin/reload", headers=ADMIN) as resp:
            return resp.status, await resp.json()


async def metrics(server) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.http + "/metrics") as resp:
            assert resp.status == 200
            return await resp.text()


def value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                out.append(int(stat.parent.name))
        except OSError:  # gone meanwhile
            pass
    return out


async def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_reload_http_bad_file_keeps_old_zones_then_sighup(tmp_path):
    zones = zones_copy(tmp_path)
    server = start_geodns(zones, tmp_path)
    try:
        assert www(server) == {"192.0.2.10", "192.0.2.11"}
        edit(zones, "data: [192.0.2.10, 192.0.2.11]", "data: [192.0.2.12]")
        edit(zones, "serial: 2026112201", "serial: 2026112202")
        status, body = await post_reload(server)
        assert status == 200 and body["ok"] and body["errors"] == []
        assert body["zones"]["cdn.example."] == 2026112202
        assert www(server) == www(server, tcp=True) == {"192.0.2.12"}

        # A broken edit: the whole reload is refused; the old zones keep answering.
        edit(zones, "AAAA: 2001:db8::10", "AAAA: 2001:db8::zz")
        edit(zones, "data: [192.0.2.12]", "data: [192.0.2.13]")
        status, body = await post_reload(server)
        assert status == 422 and not body["ok"]
        assert any("cdn.example.yaml:" in e and "www:" in e and "not an IPv6 address" in e
                   for e in body["errors"])
        assert www(server) == {"192.0.2.12"}
        text = await metrics(server)
        assert value(text, 'geodns_reloads_total{result="failed"}') == 1
        assert value(text, "geodns_last_reload_success") == 0
        assert value(text, 'geodns_zone_serial{zone="cdn.example."}') == 2026112202
        assert "reload failed" in server.logs() and "zone rejected" in server.logs()

        # Fixed, and reloaded by SIGHUP.
        edit(zones, "AAAA: 2001:db8::zz", "AAAA: 2001:db8::10")
        server.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: www(server) == {"192.0.2.13"})
        text = await metrics(server)
        assert value(text, 'geodns_reloads_total{result="ok"}') == 2
        assert value(text, "geodns_last_reload_success") == 1
    finally:
        server.stop()
    log = server.logs()
    assert "started (single" in log and "reload ok" in log and "stopped (single" in log


async def test_workers_share_the_port_and_all_reload(tmp_path):
    zones = zones_copy(tmp_path)
    server = start_geodns(zones, tmp_path, "--workers", "2")
    try:
        # Many source ports: the kernel spreads them over both workers.
        def answers() -> set[frozenset]:
            seen = set()
            for i in range(40):
                q = dns.message.make_query("www.cdn.example", "A")
                r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=30,
                                  source_port=20000 + i * 7 + (server.port % 500))
                seen.add(frozenset(x.to_text() for x in r.answer[0]))
            return seen

        assert answers() == {frozenset({"192.0.2.10", "192.0.2.11"})}
        edit(zones, "data: [192.0.2.10, 192.0.2.11]", "data: [192.0.2.14]")
        status, body = await post_reload(server)
        assert status == 200 and body["ok"]
        await wait_for(lambda: answers() == {frozenset({"192.0.2.14"})})
        assert server.logs().count("reload ok") == 3  # the parent and both workers
        # A worker that dies is replaced, and the server keeps answering.
        children = children_of(server.proc.pid)
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        await wait_for(lambda: "starting another" in server.logs())
        assert answers() == {frozenset({"192.0.2.14"})}
        # Workers flush their counters to the parent every second: wait for them.
        sample = 'geodns_queries_total{qtype="A",rcode="NOERROR",transport="udp"}'
        deadline = asyncio.get_running_loop().time() + 60
        while (total := value(await metrics(server), sample)) < 80:
            assert asyncio.get_running_loop().time() < deadline, total
            await asyncio.sleep(0.2)
    finally:
        server.stop()
    assert server.logs().count("stopped (worker") == 2


async def test_unchanged_answers_survive_a_reload_changed_ones_do_not(tmp_path):
    """A reload keeps the cached answers of RRsets it left alone (counted in
    geodns_cached_answers_kept_total) and answers every changed, added or removed name,
    and every answer built from more than one RRset, from the new zones at once."""
    zones = zones_copy(tmp_path)
    server = start_geodns(zones, tmp_path)
    cookie = [dns.edns.CookieOption(b"\x01" * 8, b"")]

    def answer(name: str, rdtype: str = "A", **kw) -> tuple[str, set[str]]:
        r = server.ask(f"{name}.test.example", rdtype, **kw)
        return dns.rcode.to_text(r.rcode()), {x.to_text() for rrset in r.answer for x in rrset}

    def soa_serial() -> int:
        return server.ask("test.example", "SOA").answer[0][0].serial

    try:
        before = {
            "ns1": answer("ns1"),  # unchanged
            "ns1 cookie": answer("ns1", use_edns=0, options=cookie),  # unchanged
            "mail AAAA": answer("mail", "AAAA"),  # unchanged, while mail A changes
            "mail": answer("mail"),
            "www": answer("www"),
            "chain1": answer("chain1"),  # CNAMEs to www
            "x.wild": answer("x.wild"),  # a wildcard CNAME to www
            "a.b.c": answer("a.b.c"),  # removed by the edit
            "new": answer("new"),  # added by the edit
        }
        assert before["www"] == ("NOERROR", {"192.0.2.1"})
        assert before["new"] == ("NXDOMAIN", set())
        assert soa_serial() == 7
        path = zones / "test.example.yaml"
        text = path.read_text()
        for old, new in [("serial: 7", "serial: 8"), ("www: {A: 192.0.2.1}", "www: {A: 192.0.2.5}"),
                         ("mail: {A: 192.0.2.25,", "mail: {A: 192.0.2.26,"),
                         ("  a.b.c: {A: 192.0.2.2}\n", "  new: {A: 192.0.2.99}\n")]:
            assert old in text
            text = text.replace(old, new)
        path.write_text(text)
        status, body = await post_reload(server)
        assert status == 200 and body["zones"]["test.example."] == 8

        for _ in range(2):  # right after the reload, then from the cache
            after = {
                "ns1": answer("ns1"),
                "ns1 cookie": answer("ns1", use_edns=0, options=cookie),
                "mail AAAA": answer("mail", "AAAA"),
                "mail": answer("mail"),
                "www": answer("www"),
                "chain1": answer("chain1"),
                "x.wild": answer("x.wild"),
                "a.b.c": answer("a.b.c"),
                "new": answer("new"),
            }
            assert soa_serial() == 8
            for same in ("ns1", "ns1 cookie", "mail AAAA"):
                assert after[same] == before[same]
            assert after["mail"] == ("NOERROR", {"192.0.2.26"})
            assert after["www"] == ("NOERROR", {"192.0.2.5"})
            assert after["chain1"] == ("NOERROR", {"chain2.test.example.", "www.test.example.",
                                                   "192.0.2.5"})
            assert after["x.wild"] == ("NOERROR", {"www.test.example.", "192.0.2.5"})
            assert after["a.b.c"] == ("NXDOMAIN", set())
            assert after["new"] == ("NOERROR", {"192.0.2.99"})
        kept: list[float] = []

        async def three_kept() -> bool:
            kept.append(value(await metrics(server), "geodns_cached_answers_kept_total"))
            return kept[-1] == 3

        deadline = asyncio.get_running_loop().time() + 10  # counters move once a second
        while not await three_kept():
            assert asyncio.get_running_loop().time() < deadline, kept
            await asyncio.sleep(0.2)
    finally:
        server.stop()
