"""Several vantage points over a real Redis: quorum, expiry of dead checkers, fallback.

The checkers are the real `healthcheck` command, started as subprocesses. Member
servers fail on purpose for probes from chosen vantage points (probes name their
vantage point in the X-Healthcheck-Vantage header), so the vantage points disagree.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import redis
import yaml
from health_members import MemberServer, pool_of, wait_for

from geodns.steering.health import Status
from healthcheck.cli import TOKEN_ENV
from healthcheck.service import HealthService

# The checkers are processes of their own, probing members served by this one: on a
# loaded machine an answer can take a while to be scheduled, which a checker cannot
# tell from a slow member. A 0.5 s timeout keeps load from voting members down.
FAST = {"interval": 0.5, "timeout": 0.5}
CHECKER = str(Path(sys.executable).parent / "healthcheck")
TOKEN = "shared-admin-token"  # the checkers' and the DNS servers' admin token


def write_zone(directory: Path, servers: list[MemberServer]) -> dict:
    members = [
        {"name": f"m{i}", "ipv4": s.host, "lat": 10.0 * i, "lon": 0.0, "health_url": s.url}
        for i, s in enumerate(servers)
    ]
    doc = {"zone": "shared.example",
           "soa": {"mname": "ns1", "rname": "hostmaster", "serial": 1},
           "records": {"@": {"NS": ["ns1"]}, "ns1": {"A": "127.0.0.1"},
                       "edge": {"pool": "edges"}},
           "pools": {"edges": {"members": members, "health": FAST}}}
    directory.mkdir(exist_ok=True)
    (directory / "shared.example.yaml").write_text(yaml.safe_dump(doc))
    return {"shared.example": {"edges": pool_of(servers, **FAST)}}


@pytest.fixture
def checkers(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(vantage: str, redis_url: str, *extra: str) -> subprocess.Popen:
        log = open(tmp_path / f"checker-{vantage}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [CHECKER, "--zones", str(tmp_path / "zones"), "--redis", redis_url,
             "--vantage", vantage, *extra],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, TOKEN_ENV: TOKEN},
        )
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def test_quorum_of_vantage_points(members, checkers, redis_server, tmp_path,
                                        unused_port):
    m0, m1 = await members(2, block=61)
    pools = write_zone(tmp_path / "zones", [m0, m1])
    (tmp_path / "ov.yaml").write_text("overrides: [{site: m1, state: draining}]\n")
    checkers("a", redis_server.url, "--http", f"127.0.0.1:{unused_port}")
    b = checkers("b", redis_server.url)
    checkers("c", redis_server.url, "--overrides", str(tmp_path / "ov.yaml"))
    service = HealthService(pools, redis_url=redis_server.url,  # a DNS server's view
                            admin_token=TOKEN)
    await service.start()
    try:
        view = service.view_for("shared.example")
        await wait_for(lambda: service.live_vantages == ["a", "b", "c"])
        await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
        # checker c's override file reaches every DNS server through Redis
        await wait_for(lambda: view.get("edges", "m1").status == Status.DRAINING)

        m0.fail_vantages = {"a"}  # one vantage point of three cannot reach m0
        await wait_for(lambda: view.get("edges", "m0").changing)  # the split vote
        for _ in range(50):
            assert view.get("edges", "m0").status == Status.UP
            await asyncio.sleep(0.02)

        m0.fail_vantages = {"a", "b"}  # two of three: a quorum
        await wait_for(lambda: view.get("edges", "m0").status == Status.DOWN)
        assert "2 of 3 vantage points say down" in view.get("edges", "m0").reason
        assert service._checks and all(  # this server's own probes still see it up
            c.health.status == Status.UP for c in service._checks.values() if c.url == m0.url
        )

        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{unused_port}/metrics") as r:
                text = await r.text()
            assert "healthcheck_probe_results_total" in text
            assert "healthcheck_state_changes_total" in text
            async with http.get(f"http://127.0.0.1:{unused_port}/admin/health") as r:
                doc = await r.json()
            assert doc["vantage"] == "a" and len(doc["members"]) == 2

        b.kill()  # dies without withdrawing: its votes expire with their TTL
        await wait_for(lambda: service.live_vantages == ["a", "c"])
        await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    finally:
        await service.stop()


async def test_losing_redis_falls_back_to_local_probes(members, checkers, redis_server,
                                                        tmp_path):
    m0, m1 = await members(2, block=62)
    pools = write_zone(tmp_path / "zones", [m0, m1])
    m0.fail_vantages = {"a"}  # the only checker says m0 is down; locally it is fine
    checkers("a", redis_server.url)
    service = HealthService(pools, redis_url=redis_server.url)
    await service.start()
    try:
        view = service.view_for("shared.example")
        await wait_for(lambda: view.get("edges", "m0").status == Status.DOWN)
        assert service.redis_ok

        redis_server.stop()
        await wait_for(lambda: not service.redis_ok)
        await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
        assert view.get("edges", "m1").status == Status.UP  # answers never went away
        await m1.stop()  # the local probes carry on by themselves
        await wait_for(lambda: view.get("edges", "m1").status == Status.DOWN)

        redis_server.start()  # Redis comes back on the same port: shared state again
        await wait_for(lambda: view.get("edges", "m0").status == Status.DOWN)
        assert service.redis_ok
    finally:
        await service.stop()


def test_checker_refuses_to_start_on_bad_zone_files(tmp_path, redis_server):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "bad.yaml").write_text("zone: bad.example\nsoa: {mname: ns1}\n")
    done = subprocess.run(
        [CHECKER, "--zones", str(zones), "--redis", redis_server.url, "--vantage", "a"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 1
    assert "bad.yaml" in done.stderr and "not starting" in done.stderr


async def test_checker_follows_zone_reloads_on_sighup(members, checkers, redis_server,
                                                       tmp_path, unused_port):
    m0, m1 = await members(2, block=63)
    write_zone(tmp_path / "zones", [m0])
    proc = checkers("a", redis_server.url, "--http", f"127.0.0.1:{unused_port}")
    url = f"http://127.0.0.1:{unused_port}/admin/health"

    async def members_seen() -> list[str]:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(url) as r:
                    return [m["member"] for m in (await r.json())["members"]]
            except aiohttp.ClientError:
                return []

    async def wait_members(expected: list[str]) -> None:
        deadline = asyncio.get_running_loop().time() + 60  # bounds a hang only
        while await members_seen() != expected:
            assert asyncio.get_running_loop().time() < deadline, f"never listed {expected}"
            await asyncio.sleep(0.05)

    await wait_members(["m0"])
    write_zone(tmp_path / "zones", [m0, m1])
    proc.send_signal(signal.SIGHUP)
    await wait_members(["m0", "m1"])
    (tmp_path / "zones" / "shared.example.yaml").write_text("zone: shared.example\npools: 5\n")
    proc.send_signal(signal.SIGHUP)  # a bad edit: the last good pools stay probed
    await asyncio.sleep(0.5)
    assert await members_seen() == ["m0", "m1"] and proc.poll() is None


async def test_overrides_in_redis_need_the_admin_token(members, checkers, redis_server,
                                                      tmp_path):
    """Overrides travel signed with the admin token: writing `__overrides__` into Redis
    directly, copying a signed set to another vantage, or checking with another token
    drains nothing."""
    m0, m1 = await members(2, block=63)
    pools = write_zone(tmp_path / "zones", [m0, m1])
    service = HealthService(pools, redis_url=redis_server.url, admin_token=TOKEN)
    other = HealthService(pools, redis_url=redis_server.url, admin_token="another-token")
    await service.start()
    await other.start()
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        view = service.view_for("shared.example")
        await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
        forged = json.dumps([{"site": "m0", "state": "down"}])
        raw.hset("{geocdn:health}:vantage:evil", "__overrides__", forged)
        raw.sadd("{geocdn:health}:vantages", "evil")
        (tmp_path / "ov.yaml").write_text("overrides: [{site: m1, state: draining}]\n")
        checkers("c", redis_server.url, "--overrides", str(tmp_path / "ov.yaml"))
        await wait_for(lambda: view.get("edges", "m1").status == Status.DRAINING)
        signed = raw.hget("{geocdn:health}:vantage:c", "__overrides__")
        raw.hset("{geocdn:health}:vantage:evil", "__overrides__",
                 signed.replace("m1", "m0"))  # tampered
        raw.hset("{geocdn:health}:vantage:replay", "__overrides__", signed)  # moved
        assert service.shared is not None
        rejected = service.shared.rejected_overrides
        raw.sadd("{geocdn:health}:vantages", "replay")
        # Two polls of Redis at least (each rejects both sets).
        await wait_for(lambda: service.shared.rejected_overrides >= rejected + 4, 30)
        assert view.get("edges", "m0").status == Status.UP
        other_view = other.view_for("shared.example")  # signed with a token it lacks
        assert other_view.get("edges", "m1").status == Status.UP
    finally:
        raw.close()
        await other.stop()
        await service.stop()
