"""Helpers for the edge tests (imported by name, like tests/dns/dnstest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

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
