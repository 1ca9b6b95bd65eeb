"""End to end over the real system (Redis, origin, seven edges, GeoDNS with its health
checker, all as processes started by the launcher): clients in several cities get
their nearest edge and a prediction; a killed edge leaves DNS within the health
bounds and its clients move on, failing only while their cached answer lives."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import time
import urllib.request

import aiohttp
import yaml
from dns.exception import DNSException

from cdn.cities import city_network
from cdn.cli import commands_to_try
from cdn.client import EdgeClient, resolve
from cdn.simulate import payload
from geodns.steering.health_settings import parse_health_settings

from .conftest import ROOT

NEAREST = {"tokyo": "tokyo", "london": "london", "ashburn": "virginia", "mumbai": "mumbai",
           "sao-paulo": "saopaulo", "sydney": "sydney", "frankfurt": "frankfurt"}


def dns_server(stack) -> tuple[str, int]:
    return stack.config.dns_host_port


async def edge_for(stack, city: str) -> tuple[str, int]:
    res = await resolve(stack.topology.steered_name, dns_server(stack),
                        ecs=str(city_network(city)), timeout=30)
    site = stack.topology.by_address(res.addresses[0])
    assert site is not None, f"{city}: answer {res.addresses} is not an edge"
    return site.name, res.ttl


async def test_clients_in_each_city_get_their_nearest_edge_and_a_prediction(stack):
    for city, expected in NEAREST.items():
        # On a machine loaded past its cores an edge may be called down or loaded for a
        # moment (the health and load rules do their job); once it is back, its city's
        # clients must be sent to it. A steering mistake never converges and fails.
        deadline = time.monotonic() + 60
        while (found := await edge_for(stack, city))[0] != expected:
            assert time.monotonic() < deadline, f"a client in {city} was sent to {found[0]}"
            await asyncio.sleep(0.5)
        edge, ttl = found
        assert 0 < ttl <= 30
        site = stack.topology.edge(edge)
        async with EdgeClient(port=site.port) as client:
            reply = await client.predict(site.address, payload("ranker", 42))
        assert reply.status == 200
        assert reply.body["region"] == edge
        assert 0.0 <= reply.body["prediction"] <= 1.0


def fall(stack) -> int:
    """How many failed probes in a row the zone's health settings need to call a member
    down."""
    zone = yaml.safe_load(next(stack.config.zones.glob("*.yaml")).read_text())
    return parse_health_settings(zone["pools"]["edges"].get("health"), lambda w, m: None,
                                 "").fall


def health_row(stack, member: str) -> dict:
    with urllib.request.urlopen(f"http://{stack.config.http}/admin/health", timeout=30) as r:
        doc = json.load(r)
    return next(m for m in doc["members"]
                if m["pool"] == stack.config.pool and m["member"] == member)


async def until(condition, what: str, timeout: float = 120) -> None:
    """Poll `condition()` (a coroutine function) until true; the deadline only bounds a
    hang."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def tokyo_client(stack, stop: asyncio.Event, log: list[dict]) -> None:
    """A Tokyo host: a stub resolver cache honouring the TTL, a request every 50 ms.
    Each entry records when the answer it used was asked for and when it expires."""
    name, server = stack.topology.steered_name, dns_server(stack)
    address, asked, expires, item = None, 0.0, 0.0, 0
    # A killed edge refuses connections at once; the generous timeout only keeps a slow
    # answer from a live edge (a loaded machine) from counting as a failure.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        while not stop.is_set():
            now = time.monotonic()
            if address is None or now >= expires:
                try:
                    res = await resolve(name, server, ecs=str(city_network("tokyo")),
                                        timeout=30)
                except DNSException:  # a stub resolver retries; not an edge failure
                    continue
                address, asked, expires = res.addresses[0], now, now + res.ttl
            site = stack.topology.by_address(address)
            item += 1
            sent = time.monotonic()  # the answer is used here; a failure shows later
            try:
                async with session.post(f"{site.base_url}/predict",
                                        json=payload("ranker", item % 20)) as r:
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            log.append({"t": time.monotonic(), "sent": sent, "edge": site.name, "ok": ok,
                        "asked": asked, "answer_expires": expires})
            await asyncio.sleep(0.05)


async def test_killed_edge_leaves_dns_after_failed_probes_and_clients_fail_only_within_ttl(
        stack):
    """No durations: how fast the checker notices is `bench/health_failover.py`'s to
    measure. Here: tokyo leaves the answers because its probes failed after the kill,
    its clients fail only on answers given while it was still answered and not yet
    expired, and then they work at the next nearest edge."""
    assert (await edge_for(stack, "tokyo"))[0] == "tokyo"
    stop, log = asyncio.Event(), []
    client = asyncio.create_task(tokyo_client(stack, stop, log))

    async def client_served() -> bool:
        return any(e["ok"] and e["edge"] == "tokyo" for e in log)

    await until(client_served, "the Tokyo client was never served by tokyo")
    killed_at = time.time()
    stack.kill("tokyo")
    try:
        await watch_tokyo_fail_over(stack, stop, client, log, killed_at)
    finally:  # the other tests of the session need tokyo back, whatever happened here
        stop.set()
        await client
        stack.restart("tokyo")

    async def tokyo_back() -> bool:
        return (await edge_for(stack, "tokyo"))[0] == "tokyo"

    await until(tokyo_back, "tokyo never came back into DNS")


async def watch_tokyo_fail_over(stack, stop, client, log: list[dict], killed_at: float
                                ) -> None:
    async def tokyo_left() -> bool:
        return (await edge_for(stack, "tokyo"))[0] != "tokyo"

    await until(tokyo_left, "tokyo never left the DNS answers")
    left = time.monotonic()  # an answer asked for from now on does not name tokyo
    row = health_row(stack, "tokyo")
    assert row["status"] == "down", row
    assert f"({fall(stack)} failed probes)" in row["reason"], row
    assert row["since"] >= killed_at, (row, killed_at)  # called down after the kill

    async def moved_on() -> bool:  # ten answers from an edge it was sent to since
        return len([e for e in log if e["asked"] > left]) >= 10

    await until(moved_on, "the client never moved on from tokyo")
    stop.set()
    await client
    failures = [e for e in log if not e["ok"]]
    assert failures, "the client never noticed that its edge was killed"
    for f in failures:
        assert f["edge"] == "tokyo", f"a request to {f['edge']} failed"
        assert f["sent"] < f["answer_expires"], "an expired DNS answer was used"
        assert f["asked"] < left, "a failure on an answer given after tokyo left DNS"
    after = [e for e in log if e["t"] > failures[-1]["t"]]
    assert len(after) >= 10 and all(e["ok"] for e in after)
    # The nearest edges to Tokyo after tokyo (mumbai; sydney when a loaded machine has
    # mumbai called down or shedding for a moment: the health and load rules at work).
    assert {e["edge"] for e in after} <= {"mumbai", "sydney"}
    assert (await edge_for(stack, "tokyo"))[0] in {"mumbai", "sydney"}
    assert stack.member_states()["tokyo"] == "down"


def test_printed_dig_and_client_lines_work_as_printed(stack, system_program):
    system_program("dig", "bind9-dnsutils")
    commands = [cmd for cmd, _ in commands_to_try(stack)]
    dig = next(c for c in commands if c.startswith("dig "))
    out = subprocess.run(shlex.split(dig), capture_output=True, text=True, timeout=10).stdout
    assert "status: NOERROR" in out
    answer = out.split("ANSWER SECTION:")[1].split("\n\n")[0]
    assert stack.topology.edge("tokyo").address in answer
    assert "CLIENT-SUBNET: 198.18.1.0/24/" in out
    clients = [c for c in commands if " client" in c]
    assert len(clients) >= 3
    for line in clients:
        done = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=30,
                              cwd=ROOT)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        assert "answered HTTP 200" in done.stdout, done.stdout
    tokyo = subprocess.run(shlex.split(clients[0]), capture_output=True, text=True,
                           timeout=30, cwd=ROOT).stdout
    assert "edge:     tokyo (" in tokyo and "cache tier l1" in tokyo  # asked twice: a hit
    london = subprocess.run(shlex.split(clients[2]), capture_output=True, text=True,
                            timeout=30, cwd=ROOT).stdout
    assert "edge:     london (" in london


async def test_the_dashboard_api_shows_every_edge_and_answers_per_region(stack):
    for city in ("tokyo", "london", "los-angeles", "los-angeles"):
        await edge_for(stack, city)
    url = f"http://{stack.config.http}/api/dashboard"
    wanted = {"Los Angeles": 2, "Tokyo": 1, "London": 1}
    deadline = time.monotonic() + 120
    while True:  # the dashboard samples the counters once a second
        with urllib.request.urlopen(url, timeout=30) as resp:
            doc = json.load(resp)
        regions = {r["region"]: r for r in doc["queries"]["regions"]}
        totals = {name: regions.get(name, {}).get("total", 0) for name in wanted}
        if all(totals[name] >= n for name, n in wanted.items()):
            break
        assert time.monotonic() < deadline, totals
        await asyncio.sleep(0.2)
    with urllib.request.urlopen(f"http://{stack.config.http}/metrics", timeout=30) as resp:
        metrics = resp.read().decode()
    assert 'geodns_pool_answers_total{member="tokyo",pool="edges",region="Tokyo"}' in metrics
    members = {m["member"]: m for m in doc["members"]}
    assert set(members) == {s.name for s in stack.topology.edges}
    for site in stack.topology.edges:
        m = members[site.name]
        assert m["address"] == site.address and m["lat"] == site.lat
        assert m["edge"] is not None and m["edge"]["region"] == site.name
