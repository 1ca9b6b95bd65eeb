"""Latency samples through a Redis Sentinel set and a Redis Cluster (with a password):
beacons an edge accepts reach the figures a DNS server computes from the same URL."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from cdn.redis_server import free_port
from edge.app import build_app
from edge.config import EdgeConfig
from geocdn.redis_url import connect
from latency.store import Follower
from latency.table import FigureTable


@pytest.mark.timeout(600)
async def test_beacons_reach_the_figures(tmp_path, redis_topology) -> None:
    port = free_port()
    config = EdgeConfig(listen=f"127.0.0.1:{port}", cache_dir=tmp_path / "cache",
                        latency_redis=redis_topology.url, latency_name="tokyo",
                        latency_peers={"mumbai": "http://127.0.0.3:1"}).validate()
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        connector = aiohttp.TCPConnector(local_addr=("127.0.40.9", 0))
        async with aiohttp.ClientSession(connector=connector) as s:
            for i in range(6):
                body = {"samples": [{"edge": "tokyo", "ms": 170 + i}, {"edge": "mumbai", "ms": 88}]}
                async with s.post(f"http://127.0.0.1:{port}/latency/beacon",
                                  data=json.dumps(body)) as r:
                    assert r.status == 202, await r.text()
    finally:
        await runner.cleanup()
    redis = connect(redis_topology.url)
    try:
        table = FigureTable()
        await Follower(redis, table).sync_once()
    finally:
        await redis.aclose()
    table.refresh(everything=True)
    figures = table.snapshot()["127.0.40.0/24"]
    assert (figures["mumbai"].ms, figures["mumbai"].samples) == (88, 6)
    assert figures["tokyo"].samples == 6
