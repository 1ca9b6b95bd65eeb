"""Edge test fixtures: example models, in-process nodes on free loopback ports, and
`edge serve` subprocesses."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from edgetest import RunningNode, ServeProcess, spawn_edge

from cdn.processes import stop_process
from cdn.redis_server import free_port
from edge.app import build_app
from edge.config import EdgeConfig
from edge.modelgen import make_models


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    make_models(path)
    return path


@pytest.fixture
async def start_node(tmp_path: Path) -> AsyncIterator[Callable]:
    """`await start_node(**config)` starts an in-process node; all stop at the end."""
    running: list[RunningNode] = []

    async def start(**overrides) -> RunningNode:
        port = overrides.pop("port", None) or free_port()
        defaults = {"listen": f"127.0.0.1:{port}", "cache_dir": tmp_path / f"cache-{port}",
                    "l2_fsync": False}
        config = EdgeConfig().replace(**{**defaults, **overrides})
        # shutdown_timeout: a node stopped while it accepts a connection (e.g. a rollout
        # agent's first poll) would otherwise wait aiohttp's default 60 s for it
        runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        node = RunningNode(config, runner)
        running.append(node)
        return node

    yield start
    for node in running:
        await node.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start `edge serve ARGS` and wait for its /health; stopped by PID at the end."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> ServeProcess:
        served = spawn_edge(tmp_path, *args)
        procs.append(served.proc)
        return served

    yield start
    for proc in procs:
        stop_process(proc)
