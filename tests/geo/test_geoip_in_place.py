"""A GeoIP database rewritten in place under a running server (truncated, or copied
over while the copy is half done): the server never crashes, the reload fails with
the file named and is counted, and the last good database keeps steering."""

from __future__ import annotations

import os
import shutil

import aiohttp
import pytest

from .conftest import CITY_ECS, EDGE_BY_V4
from .server import ADMIN, example_zones, start


@pytest.fixture
def server(tmp_path, geodb):
    db = tmp_path / "city.mmdb"
    shutil.copy(geodb.path, db)
    s = start(example_zones(tmp_path), tmp_path, "--geoip", str(db))
    s.db = db
    yield s
    s.stop()


def tokyo(server) -> list[str]:
    r = server.ask("edge.cdn.example", ecs=CITY_ECS["Tokyo"][0])
    return [EDGE_BY_V4.get(rd.address, rd.address) for rrset in r.answer for rd in rrset]


async def reload(server) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/admin/reload", headers=ADMIN) as resp:
            status, body = resp.status, await resp.json()
        async with http.get(f"{server.url}/metrics") as resp:
            return status, body, await resp.text()


def truncate(path, good: bytes) -> None:
    os.truncate(path, 0)


def half_copied(path, good: bytes) -> None:
    with open(path, "r+b") as f:  # what `cp new.mmdb city.mmdb` leaves half-way
        f.truncate(0)
        f.write(good[: len(good) // 2])


def garbage_in_place(path, good: bytes) -> None:
    with open(path, "r+b") as f:  # same size, the search tree overwritten
        f.write(os.urandom(len(good) // 2))


@pytest.mark.parametrize("damage", [truncate, half_copied, garbage_in_place])
async def test_database_damaged_in_place(server, damage):
    good = server.db.read_bytes()
    assert tokyo(server) == ["tokyo"]
    damage(server.db, good)
    assert tokyo(server) == ["tokyo"]  # the database in memory is untouched
    status, body, metrics = await reload(server)
    assert status == 422 and not body["ok"]
    (error,) = body["errors"]
    assert "GeoIP reload failed" in error and str(server.db) in error
    assert 'geodns_reloads_total{result="failed"} 1.0' in metrics
    assert tokyo(server) == ["tokyo"] and server.proc.poll() is None
    server.db.write_bytes(good)  # whole again: the next reload succeeds
    status, body, _ = await reload(server)
    assert status == 200 and body["ok"]
    assert tokyo(server) == ["tokyo"]
