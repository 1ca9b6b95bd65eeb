"""Fixtures for the distribution tests: example model files, a real origin (aiohttp on
loopback with the distribution routes, a real Redis), and real edge agents wired to the
edge's model registry and cache tiers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from aiohttp import web
from disttest import TOKEN
from onnx import numpy_helper
from redis.asyncio import Redis

from edge.cache.disk import DiskL2
from edge.cache.memory import MemoryL1
from edge.cache.tiered import TieredCache
from edge.distribution.agent import AgentConfig, RolloutAgent
from edge.distribution.client import OriginClient
from edge.distribution.events import EventStream, connect_stream
from edge.distribution.node import CachePurger, RegistryModels
from edge.distribution.origin import add_distribution_routes
from edge.distribution.placement import PlacementPolicy
from edge.distribution.store import ModelStore
from edge.metrics import NodeMetrics
from edge.modelgen import write_ranker
from edge.registry import ModelRegistry


def nudged(src: Path, dest: Path, *, scale: float, only: tuple[str, ...] = ()) -> Path:
    """A copy of `src` with its weights (or only those named in `only`) nudged."""
    model = onnx.load(str(src))
    rng = np.random.default_rng(42)
    for init in model.graph.initializer:
        if only and init.name not in only:
            continue
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(
            (w + rng.standard_normal(w.shape) * scale).astype(w.dtype), init.name))
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))
    return dest


@dataclass
class ModelFiles:
    v1: Path
    finetune: Path  # every weight nudged a little
    last_layer: Path  # only the last layer changed


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> ModelFiles:
    root = tmp_path_factory.mktemp("models")
    v1 = write_ranker(root / "src", "1", seed=0)
    return ModelFiles(
        v1=v1,
        finetune=nudged(v1, root / "ft" / "model.onnx", scale=1e-3),
        last_layer=nudged(v1, root / "ll" / "model.onnx", scale=0.05, only=("W2", "b2")),
    )


@dataclass
class Origin:
    url: str
    store: ModelStore
    redis: Redis
    runner: web.AppRunner

    def client(self, token: str | None = TOKEN) -> OriginClient:
        return OriginClient(self.url, token)


@pytest.fixture
async def origin(tmp_path, redis_server, unused_port):
    redis = connect_stream(redis_server.url)
    store = ModelStore(tmp_path / "store")
    app = web.Application()
    add_distribution_routes(app, store, TOKEN, redis)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_port).start()
    yield Origin(f"http://127.0.0.1:{unused_port}", store, redis, runner)
    await runner.cleanup()
    await redis.aclose()


@dataclass
class Edge:
    agent: RolloutAgent
    registry: ModelRegistry
    l1: MemoryL1
    l2: DiskL2
    client: OriginClient
    redis: Redis | None

    async def stop(self) -> None:
        await self.agent.stop()
        await self.client.close()
        if self.redis is not None:
            await self.redis.aclose()
        self.registry.close()


@dataclass
class EdgeFactory:
    tmp: Path
    origin: Origin
    redis_url: str
    edges: list[Edge] = field(default_factory=list)

    async def start(self, edge_id: str, *, stream: bool = True, pinned=("ranker",),
                    **config) -> Edge:
        base = self.tmp / edge_id
        registry = ModelRegistry()
        l1, l2 = MemoryL1(1 << 20), DiskL2(base / "l2", 1 << 20, fsync=False)
        redis = connect_stream(self.redis_url) if stream else None
        client = OriginClient(self.origin.url, TOKEN)
        cfg = AgentConfig(edge_id, base / "agent",
                          PlacementPolicy(pinned=frozenset(pinned)), **config)
        agent = RolloutAgent(cfg, RegistryModels(registry, base / "models"),
                             CachePurger(TieredCache(l1, l2, l1_ttl_s=60, l2_ttl_s=600,
                                                     grace_s=0, metrics=NodeMetrics())),
                             client,
                             EventStream(redis) if redis else None)
        await agent.start()
        edge = Edge(agent, registry, l1, l2, client, redis)
        self.edges.append(edge)
        return edge


@pytest.fixture
async def edges(tmp_path, origin, redis_server):
    factory = EdgeFactory(tmp_path / "edges", origin, redis_server.url)
    yield factory
    for edge in factory.edges:
        await edge.stop()

