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
                        ecs=str(city_network(city)))
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


def health_bound(stack) -> float:
    """Longest time the checker may take to call a dead edge down: `fall` failed probes
    at the longest jittered interval, the last one timing out, plus one interval for the
    phase of the probe cycle at the moment of the kill."""
    zone = yaml.safe_load(next(stack.config.zones.glob("*.yaml")).read_text())
    s = parse_health_settings(zone["pools"]["edges"].get("health"), lambda w, m: None, "")
    longest = s.interval * (1 + s.jitter)
    return s.fall * longest + s.timeout + longest


async def tokyo_client(stack, stop: asyncio.Event, log: list[dict]) -> None:
    """A Tokyo host: a stub resolver cache honouring the TTL, a request every 50 ms."""
    name, server = stack.topology.steered_name, dns_server(stack)
    address, expires, item = None, 0.0, 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while not stop.is_set():
            now = time.monotonic()
            if address is None or now >= expires:
                try:
                    res = await resolve(name, server, ecs=str(city_network("tokyo")))
                except DNSException:  # a stub resolver retries; not an edge failure
                    continue
                address, expires = res.addresses[0], now + res.ttl
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
                        "answer_expires": expires})
            await asyncio.sleep(0.05)


async def test_killed_edge_leaves_dns_in_bounds_and_clients_fail_only_within_ttl(stack):
    assert (await edge_for(stack, "tokyo"))[0] == "tokyo"
    stop, log = asyncio.Event(), []
    client = asyncio.create_task(tokyo_client(stack, stop, log))
    await asyncio.sleep(1.0)
    stack.kill("tokyo")
    killed = time.monotonic()
    try:
        await watch_tokyo_fail_over(stack, stop, client, log, killed)
    finally:  # the other tests of the session need tokyo back, whatever happened here
        stop.set()
        await client
        stack.restart("tokyo")
    started = time.monotonic()
    while (await edge_for(stack, "tokyo"))[0] != "tokyo":
        assert time.monotonic() - started < 20, "tokyo never came back into DNS"
        await asyncio.sleep(0.1)


async def watch_tokyo_fail_over(stack, stop, client, log: list[dict], killed: float) -> None:
    while (await edge_for(stack, "tokyo"))[0] == "tokyo":
        assert time.monotonic() - killed < 20, "tokyo never left the DNS answers"
        await asyncio.sleep(0.05)
    left = time.monotonic() - killed
    bound = health_bound(stack)
    assert left <= bound + 1.0, f"tokyo left DNS after {left:.2f} s (bound {bound:.2f} s)"
    # Let the client's cached answer run out, then watch it work elsewhere.
    await asyncio.sleep(stack.topology.ttl + 1.5)
    stop.set()
    await client
    failures = [e for e in log if not e["ok"]]
    assert failures, "the client never noticed that its edge was killed"
    for f in failures:
        assert f["edge"] == "tokyo", f"a request to {f['edge']} failed"
        assert f["sent"] < f["answer_expires"], "an expired DNS answer was used"
        assert f["sent"] < killed + left + stack.topology.ttl + 0.5
    after = [e for e in log if e["t"] > failures[-1]["t"]]
    assert len(after) >= 10 and all(e["ok"] for e in after)
    moved_to = {e["edge"] for e in after}
    assert moved_to == {(await edge_for(stack, "tokyo"))[0]}
    assert moved_to <= {"mumbai", "sydney"}  # the nearest edges to Tokyo after tokyo
    states = stack.member_states()
    assert states["tokyo"] == "down" and states["mumbai"] == "up"


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
    deadline = time.monotonic() + 30
    while True:  # the dashboard samples the counters once a second
        with urllib.request.urlopen(url, timeout=5) as resp:
            doc = json.load(resp)
        regions = {r["region"]: r for r in doc["queries"]["regions"]}
        totals = {name: regions.get(name, {}).get("total", 0) for name in wanted}
        if all(totals[name] >= n for name, n in wanted.items()):
            break
        assert time.monotonic() < deadline, totals
        await asyncio.sleep(0.2)
    with urllib.request.urlopen(f"http://{stack.config.http}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'geodns_pool_answers_total{member="tokyo",pool="edges",region="Tokyo"}' in metrics
    members = {m["member"]: m for m in doc["members"]}
    assert set(members) == {s.name for s in stack.topology.edges}
    for site in stack.topology.edges:
        m = members[site.name]
        assert m["address"] == site.address and m["lat"] == site.lat
        assert m["edge"] is not None and m["edge"]["region"] == site.name
