"""End to end: `geodns serve` with its health checker, measured through DNS queries.

Real member HTTP servers on their own loopback addresses; the default health settings
(interval 0.6 s, timeout 0.6 s, jitter 10 %, fall 3, reset 2, rise 3). A killed
member must leave the answers after `fall` failed probes, come back after `rise` good
ones, and a member that loses one probe in three must never leave them. How fast is
measured by `bench/health_failover.py`, not here: deadlines in these tests only bound
a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import aiohttp
import pytest
import trustme
from health_members import MemberServer, loopback_address
from health_stack import GeoDNS, ask, until, write_zone

from geodns.steering.health_settings import DEFAULTS as D

HANG = 60  # seconds: bounds a hang only (a loaded machine is slow, not wrong)


async def health_rows(http_port: int) -> dict[str, dict]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{http_port}/admin/health") as r:
        return {m["member"]: m for m in (await r.json())["members"]}


@pytest.fixture
async def stack(tmp_path):
    servers = {
        "london": MemberServer(loopback_address(70)),
        "frankfurt": MemberServer(loopback_address(70)),
        "paris": MemberServer(loopback_address(70), flap=True),  # fails 1 probe in 3
        "tokyo": MemberServer(loopback_address(70)),  # dead from the start
    }
    for name, s in servers.items():
        if name != "tokyo":
            await s.start()
        else:
            s.port = 9  # never listened on: connection refused
    write_zone(tmp_path / "zones", servers)
    server = GeoDNS(tmp_path / "zones", log=tmp_path / "geodns.log").start()
    yield server, servers
    server.stop()
    for s in servers.values():
        await s.stop()


async def test_failover_and_recovery_through_dns(stack):
    server, servers = stack
    ip = {name: s.host for name, s in servers.items()}

    # Before the states settle the pool is not answered (SERVFAIL), and the first
    # answers never name the member that was dead from the start.
    took, first = await until(server.port, "tokyo", lambda r: r.rcode == "NOERROR", HANG)
    assert first.addresses and ip["tokyo"] not in first.addresses
    assert (await ask(server.port, "london", HANG)).addresses == (ip["london"],)

    flaps: list[tuple[str, ...]] = []

    stop_watching = asyncio.Event()  # the watcher ends by itself (not cancelled: Python
    # 3.11's wait_for, in dnspython's timeout, can swallow a cancel: CPython gh-86296)

    async def watch_paris() -> None:
        while not stop_watching.is_set():
            flaps.append((await ask(server.port, "paris", HANG)).addresses)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_paris())
    try:
        await servers["london"].stop()
        down, reply = await until(server.port, "london",
                                  lambda r: r.rcode == "NOERROR" and r.addresses != (ip["london"],),
                                  HANG)
        assert reply.addresses == (ip["paris"],)  # the nearest with spare capacity
        assert reply.ttl == D.min_ttl  # TTL follows health: short while a member is down
        # ... for the answers that the down member is part of: the Frankfurt client's
        # answer (frankfurt, ranked ahead of london) keeps the pool's TTL.
        assert (await ask(server.port, "frankfurt", HANG)).ttl == 30
        london = (await health_rows(server.http_port))["london"]
        assert london["status"] == "down" and f"({D.fall} failed probes)" in london["reason"]

        await servers["london"].start()
        up, reply = await until(server.port, "london",
                                lambda r: r.addresses == (ip["london"],), HANG)
        london = (await health_rows(server.http_port))["london"]
        assert f"{D.rise} probes in a row succeeded" in london["reason"], london
        # The flapping member keeps being asked for (at least 40 answers, over the
        # failover and after it).
        deadline = asyncio.get_running_loop().time() + HANG
        while len(flaps) <= 40:
            assert asyncio.get_running_loop().time() < deadline, len(flaps)
            await asyncio.sleep(0.05)
    finally:
        stop_watching.set()
        await watcher
    assert set(flaps) == {(ip["paris"],)}  # the flapping member never left the answers


async def admin_port_up(port: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "the admin port never answered"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def london_and_frankfurt(tmp_path, octet: int, *args: str):
    """Members london and frankfurt on 127.0.<octet>.x and a server with `args`, once it
    answers the London client with london and its admin port answers (with --workers
    the parent opens that port after the workers answer DNS); yields (server, member
    addresses)."""
    servers = {name: await MemberServer(loopback_address(octet)).start()
               for name in ("london", "frankfurt")}
    write_zone(tmp_path / "zones", servers)
    server = GeoDNS(tmp_path / "zones", args=list(args), log=tmp_path / "geodns.log").start()
    ip = {name: s.host for name, s in servers.items()}
    try:
        await until(server.port, "london", lambda r: r.addresses == (ip["london"],), HANG)
        await admin_port_up(server.http_port, HANG)
        yield server, ip
    finally:
        server.stop()
        for s in servers.values():
            await s.stop()


async def test_overrides_through_the_admin_api_steer_dns(tmp_path):
    overrides = tmp_path / "overrides.yaml"
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    async with london_and_frankfurt(tmp_path, 71, "--overrides", str(overrides),
                                    "--admin-token-file", str(token)) as (server, ip):
        base = f"http://127.0.0.1:{server.http_port}"
        async with aiohttp.ClientSession() as http:
            url = f"{base}/admin/overrides/member/edges/london"
            async with http.put(url, json={"state": "down"}) as r:
                assert r.status == 401
            async with http.put(url, json={"state": "down", "reason": "maintenance"},
                                headers={"Authorization": "Bearer t0ken"}) as r:
                assert r.status == 200
            _, reply = await until(server.port, "london",
                                   lambda r: r.addresses == (ip["frankfurt"],), HANG)
            async with http.get(f"{base}/admin/health") as r:
                rows = {m["member"]: m for m in (await r.json())["members"]}
            assert rows["london"]["status"] == "down"
            assert "maintenance" in rows["london"]["reason"]
            assert rows["frankfurt"]["status"] == "up" and rows["frankfurt"]["since_iso"]
            assert "london" in overrides.read_text()

            overrides.write_text("overrides: []\n")  # an operator edits the file
            await until(server.port, "london", lambda r: r.addresses == (ip["london"],), HANG)


async def test_api_overrides_reach_every_worker_without_an_override_file(tmp_path):
    """With --workers 2 and no --overrides, an override set through the parent's admin
    API steers the answers of both workers (they share a private file for the run)."""
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    async with london_and_frankfurt(tmp_path, 72, "--workers", "2",
                                    "--admin-token-file", str(token)) as (server, ip):
        url = f"http://127.0.0.1:{server.http_port}/admin/overrides/member/edges/london"
        async with aiohttp.ClientSession() as http:
            async with http.put(url, json={"state": "down"},
                                headers={"Authorization": "Bearer t0ken"}) as r:
                assert r.status == 200
        await until(server.port, "london", lambda r: r.addresses == (ip["frankfurt"],), HANG)
        # Random source ports spread the questions over both workers: wait until every
        # worker has seen the file change.
        deadline = time.monotonic() + HANG
        while (answers := {(await ask(server.port, "london", HANG)).addresses
                           for _ in range(40)}) != {(ip["frankfurt"],)}:
            assert time.monotonic() < deadline, answers


async def test_settle_deadline_through_dns(tmp_path):
    """A member whose probes hang has no verdict for many seconds (30 timeouts); the
    pool is not answered until the `settle` deadline (5 s: time enough for the server
    to answer a first question before it, however busy the machine), then without it,
    and its answers carry the short TTL while that member is unknown."""
    servers = {"london": await MemberServer(loopback_address(72), hang=60).start(),
               "frankfurt": await MemberServer(loopback_address(72)).start()}
    write_zone(tmp_path / "zones", servers, health={"fall": 30, "settle": 5.0})
    server = GeoDNS(tmp_path / "zones", log=tmp_path / "geodns.log").start()
    try:
        replies: list = []
        took, first = await until(server.port, "london",
                                  lambda r: replies.append(r) or r.rcode == "NOERROR", HANG)
        assert "SERVFAIL" in {r.rcode for r in replies}  # asked, not answered, at first
        assert first.addresses == (servers["frankfurt"].host,)
        assert first.ttl == D.min_ttl
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.http_port}/admin/health") as r:
                rows = {m["member"]: m for m in (await r.json())["members"]}
        # answered by the deadline, not by a verdict: london's probes are still out
        assert rows["london"]["probed_status"] == "unknown"
        assert rows["london"]["status"] == "down" and rows["london"]["settled"]
        assert "no probe verdict yet" in rows["london"]["reason"]
    finally:
        server.stop()
        for s in servers.values():
            await s.stop()


async def test_https_health_urls_are_verified(tmp_path, monkeypatch):
    """HTTPS probes check the certificate: a member with one for its address is up; one
    whose certificate names another host is down, and the reason says why."""
    ca = trustme.CA()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the probes trust it
    hosts = {"london": loopback_address(73), "frankfurt": loopback_address(73)}

    def tls_for(name: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(ctx)
        return ctx

    servers = {"london": MemberServer(hosts["london"], tls=tls_for(hosts["london"])),
               "frankfurt": MemberServer(hosts["frankfurt"], tls=tls_for("other.example"))}
    for s in servers.values():
        await s.start()
    write_zone(tmp_path / "zones", servers)
    server = GeoDNS(tmp_path / "zones", log=tmp_path / "geodns.log").start()
    try:
        await until(server.port, "london", lambda r: r.addresses == (hosts["london"],), HANG)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.http_port}/admin/health"
            rows: dict = {}
            deadline = time.monotonic() + HANG
            while time.monotonic() < deadline:
                async with http.get(url) as r:
                    rows = {m["member"]: m for m in (await r.json())["members"]}
                if rows["frankfurt"]["status"] == "down":
                    break
                await asyncio.sleep(0.1)
        assert servers["london"].probes > 0 and rows["london"]["status"] == "up"
        assert "TLS certificate not accepted: " in rows["frankfurt"]["reason"], rows["frankfurt"]
    finally:
        server.stop()
        for s in servers.values():
            await s.stop()


async def test_load_from_the_health_document_sheds_clients_through_dns(tmp_path):
    """The load an edge reports in its health document drives the pool's shed
    controller: an edge that stays above `high` gives away a growing share of its
    client networks (the London client's among them, to the next edge), and they come
    back when its load falls. A 2 s TTL: the controller moves once per half TTL."""
    servers = {"london": await MemberServer(loopback_address(74), load=0.97).start(),
               "frankfurt": await MemberServer(loopback_address(74), load=0.1).start()}
    write_zone(tmp_path / "zones", servers, ttl=2)
    server = GeoDNS(tmp_path / "zones", log=tmp_path / "geodns.log").start()
    ip = {name: s.host for name, s in servers.items()}
    try:
        await until(server.port, "london", lambda r: r.addresses == (ip["frankfurt"],), HANG)
        await admin_port_up(server.http_port, HANG)
        # The admin API shows the fraction (a probe lost on a busy machine may have
        # moved the client too, so wait for the controller's figure itself).
        deadline = asyncio.get_running_loop().time() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"http://127.0.0.1:{server.http_port}/admin/health") as r:
                    rows = {m["member"]: m for m in (await r.json())["members"]}
                if rows["london"]["shed"] > 0:
                    break
                assert asyncio.get_running_loop().time() < deadline, rows["london"]
                await asyncio.sleep(0.2)
        assert rows["frankfurt"]["shed"] == 0
        servers["london"].load = 0.1
        await until(server.port, "london", lambda r: r.addresses == (ip["london"],), HANG)
    finally:
        server.stop()
        for s in servers.values():
            await s.stop()
