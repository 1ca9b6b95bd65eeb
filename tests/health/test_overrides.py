"""Operator overrides: the file, the admin API, expiry, restarts and the token."""

from __future__ import annotations

import logging
import os
import time

import aiohttp
import pytest
import yaml
from aiohttp import web
from health_members import pool_of, wait_for

from geodns.steering.health import Status
from healthcheck.admin import add_health_routes
from healthcheck.service import HealthService

FAST = {"interval": 0.2, "timeout": 0.15}  # roomy: these tests are about overrides
TOKEN = "s3cret"


@pytest.fixture
async def stack(members, unused_port, tmp_path):
    """Two pools sharing a site name, a service with an override file and its admin API."""
    servers = await members(3)
    pools = {"z": {
        "edges": pool_of(servers[:2], **FAST),  # members m0, m1
        "backup": pool_of(servers[2:], name="backup", **FAST),  # member m0 (another site)
    }}
    path = tmp_path / "overrides.yaml"
    started: list = []

    async def start(token: str | None = TOKEN):
        service = HealthService(pools, overrides_path=str(path))
        await service.start()
        app = web.Application()
        add_health_routes(app, service, token)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", unused_port).start()
        started.append((service, runner))
        await service.settled(3)
        return service, f"http://127.0.0.1:{unused_port}"

    async def stop():
        service, runner = started.pop()
        await runner.cleanup()
        await service.stop()

    yield start, stop, path
    while started:
        await stop()


def status(service: HealthService, pool: str, member: str, zone: str = "z") -> Status:
    return service.view_for(zone).get(pool, member).status


async def test_file_overrides_member_site_and_pool_with_precedence(stack):
    start, _, path = stack
    path.write_text(yaml.safe_dump({"overrides": [
        {"pool": "edges", "state": "draining"},
        {"pool": "edges", "member": "m1", "state": "up"},
        {"site": "m0", "state": "down", "reason": "maintenance"},
    ]}))
    service, _ = await start()
    await wait_for(lambda: status(service, "edges", "m0") == Status.DOWN)
    assert status(service, "backup", "m0") == Status.DOWN  # the site spans pools
    assert status(service, "edges", "m1") == Status.UP  # member beats pool
    health = service.view_for("z").get("edges", "m0")
    assert "site override" in health.reason and "maintenance" in health.reason
    assert not health.changing


async def test_file_changes_are_picked_up_and_bad_files_keep_the_last_good(stack, caplog):
    start, _, path = stack
    service, _ = await start()
    assert status(service, "edges", "m0") == Status.UP
    generation = service.generation
    path.write_text("overrides:\n  - {pool: edges, member: m0, state: down}\n")
    await wait_for(lambda: status(service, "edges", "m0") == Status.DOWN)
    assert service.generation > generation
    caplog.set_level(logging.ERROR, "healthcheck")
    for bad in ("overrides: [{pool: edges, state: sideways}]\n", "overrides: {{\n",
                "overrides: [{state: down}]\n"):
        path.write_text(bad)
        os.utime(path, (time.time() + 1, time.time() + 1))  # a surely new mtime
        await wait_for(lambda: "keeping the previous overrides" in caplog.text)
        caplog.clear()
        assert status(service, "edges", "m0") == Status.DOWN
    service.reload_overrides()  # what SIGHUP does: same bad file, same result
    assert status(service, "edges", "m0") == Status.DOWN
    path.unlink()  # no file: no overrides
    await wait_for(lambda: status(service, "edges", "m0") == Status.UP)


async def test_api_sets_persists_and_survives_a_restart(stack):
    start, stop, path = stack
    service, base = await start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        url = f"{base}/admin/overrides/member/edges/m1"
        async with http.put(url, json={"state": "down", "reason": "bad disk"},
                            headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["persisted"] is True
        assert status(service, "edges", "m1") == Status.DOWN
        saved = yaml.safe_load(path.read_text())["overrides"]
        assert saved[0]["pool"] == "edges" and saved[0]["member"] == "m1"
        async with http.get(f"{base}/admin/health") as r:
            doc = await r.json()
        row = next(m for m in doc["members"] if (m["pool"], m["member"]) == ("edges", "m1"))
        assert row["status"] == "down" and row["probed_status"] == "up"
        assert "bad disk" in row["reason"] and row["since_iso"].endswith("Z")
        assert row["override"]["state"] == "down"
        other = next(m for m in doc["members"] if (m["pool"], m["member"]) == ("edges", "m0"))
        assert other["status"] == "up" and "first probe succeeded" in other["reason"]

    await stop()
    service, base = await start()  # a new process reading the same file
    assert status(service, "edges", "m1") == Status.DOWN
    async with aiohttp.ClientSession() as http:
        async with http.delete(f"{base}/admin/overrides/member/edges/m1", headers=headers) as r:
            assert r.status == 200
        async with http.delete(f"{base}/admin/overrides/member/edges/m1", headers=headers) as r:
            assert r.status == 404
    # (the override settled the member at once; its own first verdict follows)
    await wait_for(lambda: status(service, "edges", "m1") == Status.UP)
    assert yaml.safe_load(path.read_text())["overrides"] == []


async def test_api_override_expires(stack):
    start, _, _ = stack
    service, base = await start()
    sent = time.time()
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{base}/admin/overrides/site/m0",
                            json={"state": "draining", "for": "1s"},
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
            assert "until" in (await r.json())["override"]
    assert status(service, "edges", "m0") == Status.DRAINING
    assert status(service, "backup", "m0") == Status.DRAINING
    generation = service.generation
    await wait_for(lambda: status(service, "edges", "m0") == Status.UP, 30)
    assert time.time() >= sent + 1.0  # not before its second was up
    assert status(service, "backup", "m0") == Status.UP
    assert service.generation > generation


@pytest.mark.parametrize(
    ("token", "headers", "code"),
    [
        (TOKEN, {}, 401),
        (TOKEN, {"Authorization": "Basic abc"}, 401),
        (TOKEN, {"Authorization": "Bearer wrong"}, 403),
        # the right token, but sent by a page of another site
        (TOKEN, {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}, 403),
        (None, {"Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
async def test_writes_need_the_token(stack, token, headers, code):
    start, _, path = stack
    service, base = await start(token)
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{base}/admin/overrides/pool/edges", json={"state": "down"},
                            headers=headers) as r:
            assert r.status == code
            assert "error" in await r.json()
        async with http.delete(f"{base}/admin/overrides/pool/edges", headers=headers) as r:
            assert r.status == code
    assert status(service, "edges", "m0") == Status.UP
    assert not path.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"state": "sideways"}, "state must be up, down or draining"),
        ({"state": "down", "for": "soon"}, "is not a duration"),
        ({"state": "down", "until": "tomorrow"}, "is not an ISO 8601 time"),
        ({"state": "down", "pool": "x"}, "name the target in the path"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_bad_api_bodies_get_400_and_change_nothing(stack, body, message):
    start, _, path = stack
    service, base = await start()
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{base}/admin/overrides/pool/edges", json=body,
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 400
            assert message in (await r.json())["error"]
    assert service.overrides.items == [] and not path.exists()
