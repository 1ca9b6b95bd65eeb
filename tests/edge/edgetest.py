"""Helpers for the edge tests (imported by name, like tests/dns/dnstest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from cdn.redis_server import free_port
from edge.config import EdgeConfig
from edge.node import NODE, EdgeNode

FEATURES = 32


def features(seed: float) -> list[float]:
    """A deterministic feature vector, distinct per seed."""
    return [round(((seed * 7919 + i * 104729) % 1000) / 1000.0, 3) for i in range(FEATURES)]


@dataclass
class RunningNode:
    config: EdgeConfig
    runner: web.AppRunner

    @property
    def url(self) -> str:
        host, port = self.config.host_port
        return f"http://{host}:{port}"

    @property
    def node(self) -> EdgeNode:
        return self.runner.app[NODE]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def predict(http: aiohttp.ClientSession, url: str, seed: float, **extra) -> dict:
    async with http.post(f"{url}/predict", json={"features": features(seed), **extra}) as r:
        doc = await r.json()
        assert r.status == 200, doc
        return doc


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    """Sum of all samples of a metric in the node's /metrics text."""
    async with http.get(f"{url}/metrics") as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str


def spawn_edge(folder: Path, *args: str) -> ServeProcess:
    """Start `edge serve ARGS` on a free port, logging into `folder`, and wait for its
    /health. The caller stops it (`cdn.processes.stop_process`)."""
    port = free_port()
    cmd = [sys.executable, "-m", "edge.cli", "serve", "--listen", f"127.0.0.1:{port}",
           "--cache-dir", str(folder / f"cache-{port}"), "--no-fsync", *args]
    log_path = folder / f"edge-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded machine starts it slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return ServeProcess(proc, url)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("edge serve did not start")
