"""The health checkers' shared state on a Redis Sentinel set and on a Redis Cluster,
with a password: vantage points vote, a quorum decides, and when the primary is killed
the DNS server's view comes back (and reads the votes again) once the failover is done."""

from __future__ import annotations

import asyncio

from health_members import pool_of, wait_for

from geodns.steering.health import Status
from healthcheck.service import HealthService
from redis_sets import SentinelSet

FAST = {"interval": 0.5, "timeout": 0.5}  # (a timeout above the interval is cut to it)
TOKEN = "topology-admin-token"


async def test_quorum_on_the_topology_and_through_a_failover(members, redis_topology):
    m0, m1 = await members(2, block=64)
    pools = {"shared.example": {"edges": pool_of([m0, m1], **FAST)}}
    checkers = [HealthService(pools, redis_url=redis_topology.url, vantage=v, admin_token=TOKEN)
                for v in ("a", "b", "c")]
    reader = HealthService(pools, redis_url=redis_topology.url, admin_token=TOKEN, quorum=2)
    for service in (*checkers, reader):
        await service.start()
    try:
        view = reader.view_for("shared.example")
        await wait_for(lambda: reader.live_vantages == ["a", "b", "c"], 30)
        m0.fail_vantages = {"a", "b"}  # two of three vantage points: a quorum says down
        await wait_for(lambda: view.get("edges", "m0").status == Status.DOWN)
        assert "2 of 3 vantage points say down" in view.get("edges", "m0").reason

        loop = asyncio.get_running_loop()
        killer = redis_topology.kill_primary if isinstance(redis_topology, SentinelSet) \
            else lambda: redis_topology.kill_primary_of("{geocdn:health}:vantages")
        await loop.run_in_executor(None, killer)
        m0.fail_vantages = set()  # meanwhile m0 recovers: the votes must say so again
        await wait_for(lambda: reader.redis_ok and reader.live_vantages == ["a", "b", "c"],
                       30)
        await wait_for(lambda: view.get("edges", "m0").status == Status.UP)
        assert view.get("edges", "m1").status == Status.UP
    finally:
        for service in (reader, *checkers):
            await service.stop()
