"""The origin and the edges on a Redis Sentinel set and on a Redis Cluster, with a
password: L1 in Redis, rollouts and purges on the stream, and the primary killed in
the middle of the run. Every edge applies every event once, in order (the stream's
sequence numbers show it), and no prediction request fails."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis
from aiohttp import web
from disttest import TOKEN

from cdn.redis_server import free_port
from edge.app import build_app
from edge.config import EdgeConfig
from edge.distribution.client import OriginClient
from edge.distribution.events import STREAM_KEY
from edge.distribution.wiring import AGENT
from edge.modelgen import write_ranker
from geocdn.redis_url import connect
from redis_sets import SentinelSet


class Nodes:
    def __init__(self, tmp_path, url: str) -> None:
        self.tmp_path, self.url = tmp_path, url
        self.runners: list[web.AppRunner] = []
        self.applied: dict[str, list[int]] = {}

    async def start(self, name: str, **overrides) -> str:
        port = free_port()
        config = EdgeConfig().replace(**{
            "listen": f"127.0.0.1:{port}", "cache_dir": self.tmp_path / f"cache-{name}",
            "l2_fsync": False, "redis_url": self.url, "dist_redis_url": self.url,
            "admin_token": TOKEN,
            "region": name, **overrides})
        app = build_app(config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.runners.append(runner)
        applied = self.applied.setdefault(name, [])
        app[AGENT].on_applied = lambda event: applied.append(event.seq)
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()


@pytest.fixture
async def nodes(tmp_path, redis_topology) -> AsyncIterator[Nodes]:
    made = Nodes(tmp_path, redis_topology.url)
    yield made
    await made.stop()


async def until(check: Callable[[], Awaitable[bool]], what: str,
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_rollout_and_purge_survive_a_primary_failover(nodes, redis_topology, tmp_path):
    write_ranker(tmp_path / "origin-models", "1", seed=0)
    v2 = write_ranker(tmp_path / "v2", "2", seed=1)
    origin = await nodes.start("origin", models_dir=tmp_path / "origin-models",
                               dist_store=tmp_path / "store")
    edges = [await nodes.start(f"e{i}", upstream=origin, l1="redis",
                               redis_prefix=f"e{i}:") for i in (1, 2)]
    failures: list[str] = []
    answered = [0]
    stop = asyncio.Event()

    async def load(http: aiohttp.ClientSession, seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            features = [round(rng.uniform(-1, 1), 1) for _ in range(32)]
            async with http.post(rng.choice(edges) + "/predict",
                                 json={"features": features}) as r:
                if r.status != 200:
                    failures.append(f"{r.status} {await r.text()}")
                answered[0] += 1

    async def more_answers(n: int) -> None:
        target = answered[0] + n

        async def enough() -> bool:
            return answered[0] >= target
        await until(enough, f"{n} more answers")

    async def on_every_edge(version: str) -> bool:
        for edge in edges:
            async with http.get(edge + "/health") as r:
                if (await r.json())["models"].get("ranker") != version:
                    return False
        return True

    def applied(seq: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return all(nodes.applied[e] and nodes.applied[e][-1] >= seq for e in ("e1", "e2"))
        return check

    shared = connect(redis_topology.url)
    async with aiohttp.ClientSession() as http, OriginClient(origin, TOKEN) as client:
        clients = [asyncio.create_task(load(http, i)) for i in range(4)]
        await more_answers(40)

        async def e1_l1_in_redis() -> bool:  # a loaded Redis may time out a first write
            return bool([k async for k in shared.scan_iter(match="e1:*")])
        await until(e1_l1_in_redis, "edge e1's L1 entries in the shared Redis")
        out = await client.publish(v2, "ranker", "2", activate=True)
        assert out["activate"]["announced"], out
        await until(lambda: on_every_edge("2"), "version 2 on every edge")
        purge = await client.purge("prefix", "ranker")
        await until(applied(purge["event"]["seq"]), "the first purge on every edge")

        killed = redis_topology.kill_primary() if isinstance(redis_topology, SentinelSet) \
            else redis_topology.kill_primary_of(STREAM_KEY)
        assert killed
        await more_answers(20)  # the edges go on serving through the failover

        out = await client.rollback("ranker")
        assert out["announced"], out
        await until(lambda: on_every_edge("1"), "the rollback on every edge")
        purge = await client.purge("tag", "model:ranker")
        await until(applied(purge["event"]["seq"]), "the purge after the failover")
        await more_answers(40)
        stop.set()
        await asyncio.gather(*clients)
    await shared.aclose()

    assert not failures, failures[:5]
    for edge in ("e1", "e2"):
        seqs = nodes.applied[edge]
        assert seqs == list(range(1, len(seqs) + 1)), (edge, seqs)  # once each, in order
        assert len(seqs) == purge["event"]["seq"], (edge, seqs)


def test_without_the_password_a_client_gets_nothing(redis_topology):
    topology = redis_topology
    servers = topology.servers if isinstance(topology, SentinelSet) else topology.nodes
    for server in servers:
        plain = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            plain.set("x", 1)
        with pytest.raises(redis.AuthenticationError):
            plain.xread({STREAM_KEY: "0-0"})
