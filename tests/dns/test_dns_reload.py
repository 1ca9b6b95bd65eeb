"""Reload without restart (HTTP and SIGHUP, one worker and several), a bad file keeps
the old zones serving, and the metrics and logs show what happened."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import dns.message
import dns.query
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
