"""The live health dashboard, served by `geodns serve`'s admin HTTP app.

`add_dashboard_routes(app, sources)` adds:

* ``GET /`` and ``GET /dashboard`` - the page (static HTML + JS + the land outline, all
  served from this package: nothing is loaded from the Internet).
* ``GET /api/dashboard`` - one JSON document with everything the page shows (below).

A sampler task (started with the app) looks once per `interval` at the members' health
rows (the health service's, as GET /admin/health lists them), at every edge's health
document and /metrics (for its request rate) and at the server's Prometheus counters,
so rates are computed the same way whoever polls, and state changes are remembered
even while nobody has the page open.

The JSON document::

    {"time": unix, "interval": s,
     "members": [{"zone", "pool", "member", "address", "lat", "lon", "status", "since",
                  "reason", "load", "hit_rate", "latency_ms", "override", "rps",
                  "answers_per_s", "edge": {the edge's own /health document or null}}],
     "queries": {"total": n, "per_s": x,
                 "regions": [{"region", "per_s", "total", "members": {member: per_s},
                              "member_totals": {member: answers}}]},
     "changes": [{"time", "zone", "pool", "member", "from", "to", "reason"}],   # newest first
     "admin": {"override_url": "/admin/overrides/member/{pool}/{member}"}}
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

STATIC = Path(__file__).with_name("static")
QUERIES_METRIC = "geodns_queries"  # counter: every query answered
ANSWERS_METRIC = "geodns_pool_answers"  # counter: labels pool, member, region
EDGE_REQUESTS_METRIC = "edge_http_requests"  # on each edge's /metrics: endpoint, status


@dataclass(frozen=True)
class Place:
    """Where a pool member is, from the zone file."""

    zone: str
    pool: str
    member: str
    address: str
    lat: float | None
    lon: float | None


@dataclass
class DashboardSources:
    """What the dashboard reads; `geodns serve` fills it from its own objects."""

    # The members' health rows, as GET /admin/health lists them under "members".
    health_rows: Callable[[aiohttp.ClientSession], Awaitable[list[dict[str, Any]]]]
    places: Callable[[], list[Place]]  # the pools' members, from the loaded zones
    registry: Callable[[], CollectorRegistry] = lambda: REGISTRY  # the server's counters
    interval: float = 1.0
    edge_timeout: float = 0.8


def served_requests(metrics_text: str) -> float:
    """Requests an edge served (every route but its own /health and /metrics)."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != EDGE_REQUESTS_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("endpoint") not in (
                "health", "metrics"
            ):
                total += sample.value
    return total


def _counter_totals(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    """Label values → value of the `_total` samples of a counter (empty if absent).
    Only that counter is collected, not the whole registry."""
    out: dict[tuple, float] = {}
    for metric in registry.restricted_registry([name + "_total"]).collect():
        for sample in metric.samples:
            if sample.name == name + "_total":
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@dataclass
class Rate:
    """Per-second rate of a monotonic counter between two looks (restarts reset it)."""

    last: float | None = None
    at: float = 0.0
    per_s: float = 0.0

    def update(self, value: float, now: float) -> float:
        if self.last is not None and now > self.at:
            self.per_s = max(0.0, value - self.last) / (now - self.at)
        self.last, self.at = value, now
        return self.per_s


@dataclass
class Sampler:
    sources: DashboardSources
    changes: deque = field(default_factory=lambda: deque(maxlen=100))
    edge_docs: dict[str, dict | None] = field(default_factory=dict)  # health URL → doc
    _status: dict[tuple, str] = field(default_factory=dict)
    _edge_rates: dict[str, Rate] = field(default_factory=dict)
    _query_rate: Rate = field(default_factory=Rate)
    _answer_rates: dict[tuple, Rate] = field(default_factory=dict)
    _answer_totals: dict[tuple, float] = field(default_factory=dict)
    query_total: float = 0.0
    rows: list[dict] = field(default_factory=list)  # the last health rows

    def observe_health(self, rows: list[dict], now: float) -> None:
        for row in rows:
            key = (row["zone"], row["pool"], row["member"])
            status = row["status"]
            before = self._status.get(key)
            if before is not None and before != status:
                self.changes.appendleft({
                    "time": now, "zone": key[0], "pool": key[1],
                    "member": key[2], "from": before, "to": status, "reason": row["reason"],
                })
            self._status[key] = status

    async def observe_edges(self, session: aiohttp.ClientSession, rows: list[dict],
                            now: float) -> None:
        """Each edge's health document, and its request rate from its /metrics."""
        urls = sorted({r["target"] for r in rows if (r.get("target") or "").startswith("http")})

        async def fetch(url: str) -> None:
            try:
                async with session.get(url) as resp:
                    doc = await resp.json(content_type=None)
                async with session.get(urljoin(url, "/metrics")) as resp:
                    served = served_requests(await resp.text())
            except (aiohttp.ClientError, TimeoutError, ValueError):
                doc, served = None, None
            self.edge_docs[url] = doc if isinstance(doc, dict) else None
            rate = self._edge_rates.setdefault(url, Rate())
            if served is None:
                rate.last, rate.per_s = None, 0.0
            else:
                rate.update(served, now)

        await asyncio.gather(*(fetch(u) for u in urls))

    def observe_counters(self, now: float) -> None:
        registry = self.sources.registry()
        self.query_total = sum(_counter_totals(registry, QUERIES_METRIC).values())
        self._query_rate.update(self.query_total, now)
        self._answer_totals = _counter_totals(registry, ANSWERS_METRIC)
        for labels, value in self._answer_totals.items():
            self._answer_rates.setdefault(labels, Rate()).update(value, now)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.sources.edge_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.sample(session)
                await asyncio.sleep(self.sources.interval)

    async def sample(self, session: aiohttp.ClientSession) -> None:
        now = time.time()
        try:
            rows = await self.sources.health_rows(session)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            rows = self.rows  # keep showing the last known rows
        self.rows = rows
        self.observe_health(rows, now)
        self.observe_counters(now)
        await self.observe_edges(session, rows, now)

    # -- the document ------------------------------------------------------------------

    def _answers(self) -> tuple[dict[str, float], list[dict]]:
        """Answers per second per member, and per client region (with its members)."""
        per_member: dict[str, float] = {}
        regions: dict[str, dict] = {}
        for labels, rate in self._answer_rates.items():
            d = dict(labels)
            member, region = d.get("member", "?"), d.get("region", "?")
            per_member[member] = per_member.get(member, 0.0) + rate.per_s
            r = regions.setdefault(region, {"region": region, "per_s": 0.0, "total": 0.0,
                                            "members": {}, "member_totals": {}})
            total = self._answer_totals.get(labels, 0.0)
            r["per_s"] += rate.per_s
            r["total"] += total
            r["members"][member] = r["members"].get(member, 0.0) + rate.per_s
            r["member_totals"][member] = r["member_totals"].get(member, 0.0) + total
        return per_member, sorted(regions.values(), key=lambda r: -r["total"])

    def document(self) -> dict[str, Any]:
        places = {(p.zone, p.pool, p.member): p for p in self.sources.places()}
        per_member, regions = self._answers()
        members = []
        for row in self.rows:
            key = (row["zone"], row["pool"], row["member"])
            place = places.get(key)
            target = row.get("target") or ""
            rate = self._edge_rates.get(target)
            members.append({
                **{k: row.get(k) for k in ("zone", "pool", "member", "status", "since",
                                           "reason", "load", "hit_rate", "latency_ms",
                                           "override", "changing")},
                "address": place.address if place else None,
                "lat": place.lat if place else None,
                "lon": place.lon if place else None,
                "rps": rate.per_s if rate else None,
                "answers_per_s": per_member.get(row["member"], 0.0),
                "edge": self.edge_docs.get(target),
            })
        return {
            "time": time.time(),
            "interval": self.sources.interval,
            "members": members,
            "queries": {"total": self.query_total, "per_s": self._query_rate.per_s,
                        "regions": regions},
            "changes": list(self.changes),
            "admin": {"override_url": "/admin/overrides/member/{pool}/{member}"},
        }


SAMPLER = web.AppKey("dashboard_sampler", Sampler)


def add_dashboard_routes(app: web.Application, sources: DashboardSources) -> None:
    sampler = Sampler(sources)

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def api(request: web.Request) -> web.Response:
        return web.json_response(sampler.document(), headers={"Cache-Control": "no-store"})

    async def sampling(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sampler.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_get("/", page)
    app.router.add_get("/dashboard", page)
    app.router.add_get("/api/dashboard", api)
    app.router.add_static("/dashboard/static", STATIC)
    app.cleanup_ctx.append(sampling)
    app[SAMPLER] = sampler
