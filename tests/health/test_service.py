"""HealthService against real member HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import time
import urllib.request

import pytest
from health_members import InFlight, late_between, loopback_address, pool_of, wait_for
from prometheus_client import REGISTRY

from cdn.processes import stop_process
from cdn.redis_server import free_port
from geodns.steering import Member, Pool
from geodns.steering.health import Status
from geodns.steering.health_settings import DEFAULTS
from healthcheck.service import HealthService

FAST = {"interval": 0.1, "timeout": 0.08}


@pytest.fixture
async def running():
    services: list[HealthService] = []

    async def start(pools, **kwargs) -> HealthService:
        service = HealthService(pools, **kwargs)
        services.append(service)
        await service.start()
        return service

    yield start
    for s in services:
        await s.stop()


def member_state(member: str) -> dict[str, float | None]:
    """healthcheck_member_state of a member of pool z/edges, by state."""
    return {state.value: REGISTRY.get_sample_value("healthcheck_member_state", {
        "zone": "z", "pool": "edges", "member": member, "state": state.value})
        for state in Status}


def state_changes(target: str, to: str) -> float:
    value = REGISTRY.get_sample_value("healthcheck_state_changes_total",
                                      {"target": target, "to": to})
    return value or 0.0


async def test_dead_member_goes_down_after_failed_probes_and_comes_back(members, running,
                                                                       caplog):
    """How long it takes is `bench/health_failover.py`'s to measure; here: down only
    after `fall` failed probes, up only after `rise` good ones, each change logged."""
    caplog.set_level(logging.INFO, "healthcheck")
    servers = await members(2)
    service = await running({"z": {"edges": pool_of(servers)}})  # default settings
    view = service.view_for("z")
    assert await service.settled(60)
    assert view.get("edges", "m0").status == Status.UP
    assert member_state("m0") == {"up": 1, "down": 0, "unknown": 0, "draining": 0}

    downs = state_changes(servers[0].url, "down")
    await servers[0].stop()
    await wait_for(lambda: view.get("edges", "m0").status == Status.DOWN)
    down = view.get("edges", "m0")
    assert "refused" in down.reason.lower() and f"{DEFAULTS.fall} failed probes" in down.reason
    # Every change: a log line with the reason, and the metric.
    assert f"{servers[0].url} [z/edges/m0] up -> down (local probes): {down.reason}" in (
        caplog.text)
    assert state_changes(servers[0].url, "down") == downs + 1
    assert member_state("m0") == {"up": 0, "down": 1, "unknown": 0, "draining": 0}
    assert view.get("edges", "m1").status == Status.UP

    servers[0].requests = 0
    await servers[0].start()
    await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    assert servers[0].requests >= DEFAULTS.rise  # not before `rise` successes in a row
    assert f"{DEFAULTS.rise} probes in a row succeeded" in view.get("edges", "m0").reason


async def test_a_member_losing_one_probe_in_three_never_goes_down(members, running):
    flapper, = await members(1, flap=True)
    service = await running({"z": {"edges": pool_of([flapper], **FAST)}})
    view = service.view_for("z")
    assert await service.settled(2)
    seen, changing = set(), False

    def watch() -> bool:  # every status it shows until 30 more probes (10 of them failed)
        h = view.get("edges", "m0")
        seen.add(h.status)
        nonlocal changing
        changing |= h.changing
        return flapper.probes >= probes + 30

    probes = flapper.probes
    await wait_for(watch, 60)
    assert seen == {Status.UP}
    assert changing  # its failures were counted (short TTL), just never enough


@pytest.mark.parametrize(
    ("setup", "settings", "reason"),
    [
        ({"http_status": 503}, {}, "HTTP 503"),
        ({"status": "broken"}, {}, "document status 'broken'"),
        # An edge catching up with the model stream: kept out of answers on purpose.
        ({"status": "syncing"}, {}, "document status 'syncing'"),
        ({}, {"body": "nonexistent"}, "body lacks 'nonexistent'"),
        ({}, {"body_regex": "^x"}, "body does not match"),
        ({"hang": 1.0}, {}, "timed out after 0.08 s"),
    ],
)
async def test_failed_probes_say_why(members, running, setup, settings, reason):
    server, = await members(1, **setup)
    service = await running({"z": {"edges": pool_of([server], **FAST, **settings)}})
    view = service.view_for("z")
    # (the settle deadline may call it down first, before any verdict: wait for the verdict)
    await wait_for(lambda: reason in view.get("edges", "m0").reason)
    assert view.get("edges", "m0").status == Status.DOWN


async def test_expected_codes_and_body_match_pass(members, running):
    server, = await members(1, http_status=202)
    pool = pool_of([server], expect=[200, 202], body_regex='"status": ?"ok"', **FAST)
    service = await running({"z": {"edges": pool}})
    await wait_for(lambda: service.view.get("edges", "m0").status == Status.UP)


async def test_tcp_probe(members, running):
    server, = await members(1)
    pool = Pool("edges", 30, [Member("m0", (server.host,), (),
                                     f"tcp://{server.host}:{server.port}")], dict(FAST))
    service = await running({"z": {"edges": pool}})
    view = service.view_for("z")
    await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    await server.stop()
    await wait_for(lambda: view.get("edges", "m0").status == Status.DOWN)
    assert "refused" in view.get("edges", "m0").reason.lower()


async def test_load_and_hit_rate_are_smoothed(members, running):
    server, = await members(1, load=0.1, hit_rate=0.9)
    service = await running({"z": {"edges": pool_of([server], smoothing=0.3, **FAST)}})
    view = service.view_for("z")
    await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    assert view.get("edges", "m0").load == pytest.approx(0.1)
    generation = view.generation
    server.load, server.hit_rate = 0.9, 0.1
    seen = set()

    def settled_high() -> bool:
        seen.add(view.get("edges", "m0").load)
        return view.get("edges", "m0").load > 0.87

    await wait_for(settled_high, step=0.01)
    assert any(0.2 < x < 0.8 for x in seen)  # it moved step by step, not at once
    assert view.get("edges", "m0").hit_rate < 0.15
    assert view.generation > generation


async def test_draining_member_is_up_but_draining(members, running):
    server, = await members(1, status="draining")
    service = await running({"z": {"edges": pool_of([server], **FAST)}})
    view = service.view_for("z")
    await wait_for(lambda: view.get("edges", "m0").status == Status.DRAINING)
    server.status = "ok"
    await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    server.status = "draining"
    await wait_for(lambda: view.get("edges", "m0").status == Status.DRAINING)
    assert "draining" in view.get("edges", "m0").reason


async def test_unknown_until_settled_or_the_deadline(members, running):
    slow, = await members(1, hang=10.0)  # probes time out: no verdict for a while
    fast, = await members(1)
    pools = {"z": {  # a verdict on slow needs 8 timeouts (> 3.9 s); its deadline is 0.6 s
        "slow": pool_of([slow], name="slow", interval=0.5, timeout=0.4, settle=0.6, fall=8),
        "fast": pool_of([fast], name="fast", settle=30),
    }}
    service = await running(pools)
    view = service.view_for("z")
    assert not view.settled("slow") and not view.settled("fast")
    assert view.get("slow", "m0").status == Status.UNKNOWN
    await asyncio.wait_for(view.wait_settled("fast"), 20)  # before its deadline (30 s)
    assert view.get("fast", "m0").status == Status.UP
    await wait_for(lambda: view.settled("slow"))
    # Settled by the deadline (0.6 s after start), not by a verdict (which needs 3
    # timeouts): no verdict yet, so counted as not up for steering, and said so.
    assert view.get("slow", "m0").status == Status.DOWN
    assert "no probe verdict yet" in view.get("slow", "m0").reason
    assert service.rows()[1]["probed_status"] == "unknown"
    assert await service.settled(0.1)
    await wait_for(lambda: "timed out" in view.get("slow", "m0").reason)


async def test_one_probe_per_target_however_many_pools_use_it(members, running):
    """A target three pools share is probed as often as one only a single pool uses."""
    server, alone = await members(2)
    pools = {
        "a.example": {"p1": pool_of([server], name="p1", **FAST),
                      "p2": pool_of([server], name="p2", **FAST)},
        "b.example": {"p1": pool_of([server], name="p1", **FAST),
                      "solo": pool_of([alone], name="solo", **FAST)},
    }
    service = await running(pools)
    assert await service.settled(30)
    server.probes = alone.probes = 0
    await wait_for(lambda: alone.probes >= 30, 60)
    # Same interval and jitter: about as many probes each, not three times as many.
    assert alone.probes / 1.5 - 2 <= server.probes <= alone.probes * 1.5 + 2, (
        server.probes, alone.probes)
    for zone, pool in (("a.example", "p1"), ("a.example", "p2"), ("b.example", "p1"),
                       ("b.example", "solo")):
        assert service.view_for(zone).get(pool, "m0").status == Status.UP


async def test_probes_are_jittered(members, running):
    """Each interval is drawn in interval x (1 +- jitter), so probes of many targets do
    not march in step; never shorter or longer than that."""
    servers = await members(3)
    service = await running(
        {"z": {"edges": pool_of(servers, interval=0.1, timeout=0.08, jitter=0.5)}})
    await wait_for(lambda: all(len(s.probe_times) >= 11 for s in servers), 60)
    lag = service.lag
    gaps = [b - a for s in servers for a, b in itertools.pairwise(s.probe_times)]
    for s in servers:
        for a, b in itertools.pairwise(s.probe_times):
            # 0.05..0.15 s between probe starts; the slack covers the request itself, and
            # a busy machine stretches a gap (or, delaying one arrival, shortens the next)
            # by as much as this process ran late meanwhile: allowed for, and no more.
            assert b - a >= 0.04 - late_between(lag, a - 0.35, b), (b - a, sorted(gaps))
            assert b - a <= 0.35 + late_between(lag, a, b + 0.1), (b - a, sorted(gaps))
    assert max(gaps) - min(gaps) > 0.05  # drawn, not fixed
    # The first probes are spread too (each waits up to 0.05 s first), unless this process
    # stalled through those first moments, so that they all went out as it woke up.
    firsts = sorted(s.probe_times[0] for s in servers)
    stalled = late_between(lag, 0.0, firsts[-1] + 0.1)
    assert firsts[-1] - firsts[0] > 0.001 or stalled > 0.01, (firsts, stalled)


async def test_concurrent_probes_are_bounded(members, running):
    group = InFlight()
    servers = await members(6, hang=0.1, group=group)
    pool = pool_of(servers, interval=0.2, timeout=0.19)
    service = await running({"z": {"edges": pool}}, max_concurrent=2)
    # every member up (their probes waited their turn and still passed), then: never
    # more than two probes in flight (waiting for the verdicts, not for a count of
    # requests, which a loaded machine may reach before all six are settled)
    await wait_for(lambda: all(service.view.get("edges", f"m{i}").status == Status.UP
                               for i in range(6)))
    assert sum(s.requests for s in servers) >= 6 and group.most == 2


async def test_ttl_follows_health(members, running):
    """A member is unsteady while UNKNOWN, DOWN or changing; an answer it is part of
    gets the pool's min_ttl, others the pool's ttl (capped by max_ttl)."""
    servers = await members(2)
    pool = pool_of(servers, ttl=60, min_ttl=5, **FAST)
    service = await running({"z": {"edges": pool}})
    view = service.view_for("z")
    assert view.get("edges", "m1").unsteady  # UNKNOWN
    await wait_for(lambda: not view.get("edges", "m1").unsteady)
    await servers[1].stop()
    await wait_for(lambda: view.get("edges", "m1").unsteady)  # failures being counted
    await wait_for(lambda: view.get("edges", "m1").status == Status.DOWN)
    assert view.get("edges", "m1").unsteady and not view.get("edges", "m0").unsteady
    await servers[1].start()
    await wait_for(lambda: not view.get("edges", "m1").unsteady)
    assert (view.ttl_for("edges", 60, True), view.ttl_for("edges", 60, False)) == (5, 60)
    capped = pool_of(servers, name="capped", ttl=60, max_ttl=20, **FAST)
    service.update_targets({"z": {"edges": pool, "capped": capped}})
    assert (view.ttl_for("capped", 60, True), view.ttl_for("capped", 60, False)) == (5, 20)


async def test_reload_keeps_state_of_kept_targets(members, running):
    a, b = await members(2)
    service = await running({"z": {"edges": pool_of([a], **FAST)}})
    view = service.view_for("z")
    await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    since = view.get("edges", "m0").since
    service.update_targets({"z": {"edges": pool_of([a, b], **FAST)}})
    assert view.get("edges", "m0").since == since
    # The pool is being answered: the new member stays out of it until its first verdict.
    assert view.get("edges", "m1").status == Status.DOWN
    assert service.rows()[1]["probed_status"] == "unknown"
    await wait_for(lambda: view.get("edges", "m1").status == Status.UP)
    service.update_targets({"z": {"edges": pool_of([b], **FAST)}})
    a.requests, probes = 0, b.probes
    await wait_for(lambda: b.probes >= probes + 5, 30)  # five intervals of its own
    assert a.requests <= 1  # no longer probed (one probe may have been on its way)


SLOW_MEMBER = """
import http.server, sys, time
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.3)  # answers well within the timeout, but is in flight a while
        body = b'{"status": "ok", "load": 0.1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Health).serve_forever()
"""


@pytest.fixture
def slow_member():
    """A member in its own process (so it answers while this one stalls), taking 0.3 s
    per answer."""
    host = loopback_address(61)
    port = free_port(host)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_MEMBER, host, str(port)])
    url = f"http://{host}:{port}/health"
    deadline = time.monotonic() + 30
    while True:  # serving before the checker starts (a refused first probe is a down)
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "member"
            time.sleep(0.1)
    yield url
    stop_process(proc)


def probe_results(url: str, result: str) -> float:
    return REGISTRY.get_sample_value("healthcheck_probe_results_total",
                                     {"target": url, "result": result}) or 0.0


async def test_a_stalled_checker_does_not_count_its_own_delays(slow_member, running):
    """The checker's own process stalls past the probe timeout (a busy machine; here the
    test blocks the event loop) while the member answers in time: the timeouts that
    straddle a stall are inconclusive, never failures, and the member stays up."""
    pool = Pool(name="edges", ttl=30, members=[Member("m0", ("127.0.0.1",), (), slow_member)],
                health={"interval": 0.6, "timeout": 0.6})
    service = await running({"z": {"edges": pool}})
    view = service.view_for("z")
    await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
    # The member's 0.3 s leaves it 0.3 s of room within the timeout even on a busy
    # machine; a probe is in flight half the time, so some stalls straddle one.
    for _ in range(10):
        await asyncio.sleep(0.7)  # probes succeed in between ...
        time.sleep(0.8)  # noqa: ASYNC251 - ... and this process stalls past the timeout
    await asyncio.sleep(0.7)
    assert probe_results(slow_member, "inconclusive") > 0
    assert probe_results(slow_member, "fail") == 0
    assert view.get("edges", "m0").status == Status.UP
