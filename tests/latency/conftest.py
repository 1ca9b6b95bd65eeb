"""A real edge node with latency measurements on, and clients posing as networks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from cdn.redis_server import free_port
from edge.app import build_app
from edge.config import EdgeConfig
from geocdn.redis_url import connect
from latency.store import Follower
from latency.table import FigureTable


@dataclass
class BeaconEdge:
    url: str
    redis_url: str

    async def post(self, source: str, body: bytes | dict | list) -> tuple[int, dict, dict]:
        """POST a beacon from `source` (a loopback address): status, JSON body, headers."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        async with aiohttp.ClientSession(connector=connector) as s, \
                s.post(f"{self.url}/latency/beacon", data=data,
                       headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)

    async def figures(self) -> dict:
        """Every network's figures, as a DNS server following this Redis computes them."""
        redis = connect(self.redis_url)
        try:
            table = FigureTable()
            follower = Follower(redis, table)
            await follower.sync_once()
            table.refresh(everything=True)
            return table.snapshot()
        finally:
            await redis.aclose()


@pytest.fixture
async def beacon_edge(tmp_path, redis_server) -> AsyncIterator[BeaconEdge]:
    port = free_port()
    config = EdgeConfig(listen=f"127.0.0.1:{port}", cache_dir=tmp_path / "cache",
                        latency_redis=redis_server.url, latency_name="tokyo",
                        latency_peers={"london": "http://127.0.0.2:1",
                                       "mumbai": "http://127.0.0.3:1"}).validate()
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield BeaconEdge(f"http://127.0.0.1:{port}", redis_server.url)
    finally:
        await runner.cleanup()
