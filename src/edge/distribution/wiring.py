"""Model distribution inside a node: `setup(app, config)` (called by `edge.app.build_app`).

* An origin with `dist_store` serves the distribution API (`/dist/v1`, see `origin`) and
  runs its own rollout agent reading its store in-process, so the origin's models switch
  with everyone else's. On start it publishes the models of its model folder that the
  store does not know yet (and makes them current), so a fresh stack has something to
  roll out.
* Every edge (a node with an upstream) runs a rollout agent fetching from `dist_url`
  (default: its upstream), following the Redis stream of `dist_redis_url` (default:
  `redis_url`) when one is set, else polling. Models the node holds when it starts are
  pinned; others are placed by demand.

The agent is `app[AGENT]` and `node.rollout`: the node reports its state in /health
(status `syncing` until caught up) and counts requests per model through it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from edge.config import EdgeConfig
from edge.distribution.agent import AgentConfig, RolloutAgent
from edge.distribution.client import OriginClient
from edge.distribution.errors import DistributionError
from edge.distribution.events import EventStream, connect_stream
from edge.distribution.metrics import AgentMetrics
from edge.distribution.node import CachePurger, RegistryModels
from edge.distribution.oci import Registry
from edge.distribution.origin import add_distribution_routes
from edge.distribution.placement import PlacementPolicy
from edge.distribution.service import LocalOrigin
from edge.distribution.store import ModelStore, read_config
from edge.node import NODE
from edge.registry import MODEL_FILE, current_versions

log = logging.getLogger(__name__)
AGENT = web.AppKey("rollout_agent", RolloutAgent)
DEFAULT_IDLE_EVICT_S = 600.0


def edge_id(config: EdgeConfig) -> str:
    if config.edge_id:
        return config.edge_id
    host, port = config.host_port
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{config.region}-{host}-{port}")


def import_folder(store: ModelStore, models_dir: Path) -> list[str]:
    """Publish (and make current) each model of the folder the store does not know."""
    known = set(store.models())
    done = []
    for name, version in current_versions(models_dir).items():
        if name in known:
            continue
        try:
            path = models_dir / name / version / MODEL_FILE
            store.publish(path, name, version, config=read_config(path))
            store.activate(name, version)
            done.append(f"{name} {version}")
        except DistributionError as exc:
            log.error("not importing %s %s into the distribution store: %s", name, version, exc)
    return done


def setup(app: web.Application, config: EdgeConfig) -> RolloutAgent | None:
    if config.is_origin and not config.dist_store:
        return None
    node = app[NODE]
    redis = connect_stream(config.stream_redis_url) if config.stream_redis_url else None
    if config.dist_store:
        dist = add_distribution_routes(app, config.dist_store, config.admin_token, redis)
        source: OriginClient | LocalOrigin = LocalOrigin(dist)
    else:
        url = config.dist_url or config.upstream or ""
        source = OriginClient(url if "://" in url else f"http://{url}", config.admin_token)
    models_dir = Path(config.models_dir or config.cache_root / "models")
    policy = PlacementPolicy(threshold=config.prefetch_threshold,
                             idle_evict_s=config.model_idle_unload_s or DEFAULT_IDLE_EVICT_S)
    agent = RolloutAgent(
        AgentConfig(edge_id(config), config.cache_root / "rollout", policy,
                    prefer_int8=config.prefer_int8,
                    registry=Registry.parse(config.oci_registry) if config.oci_registry else None),
        RegistryModels(node.registry, models_dir),
        CachePurger(node.cache), source,
        EventStream(redis) if redis else None, AgentMetrics(node.metrics.registry))
    app[AGENT] = agent

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        if config.dist_store:
            for line in await asyncio.to_thread(import_folder, dist.store, models_dir):
                log.info("published %s from the model folder into the store", line)
        elif not config.models_dir:  # the agent's own folder: what it installed before
            await asyncio.to_thread(node.registry.load_folder, models_dir)
        policy.pinned = frozenset(node.registry.active())
        node.rollout = agent
        await agent.start()
        yield
        node.rollout = None
        await agent.stop()
        await source.close()
        if redis is not None:
            await redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    return agent
