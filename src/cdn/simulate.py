"""A world of clients: load through the real DNS server and edges, with a report.

Clients live in the example cities (weighted); each has its own ECS network inside its
city's demo GeoIP network and its own stub-resolver cache, so it asks the DNS server
again only when the answer's TTL has run out, like a real host. Requests pick a model
and an input by Zipf popularity, so some inputs are hot and cache well and the tail
misses. Optionally an edge is killed (and restarted) mid-run to show failover.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import aiohttp
import numpy as np
from dns.exception import DNSException

from cdn.client import Resolution, ResolveError, resolve
from cdn.control import Controller
from cdn.topology import Topology

TIERS = ("L1", "L2", "origin")
STUB_TIMEOUT_S, STUB_ATTEMPTS = 5.0, 2  # a stub resolver's defaults (resolv.conf(5))


def tier_of(reply: dict) -> str:
    """Our three tiers from an edge's `tier`: l1; l2 (or stale, served from L2 in grace);
    anything else (`upstream/...`, `compute`) went to the origin."""
    raw = str(reply.get("tier", "")).lower()
    if raw == "l1":
        return "L1"
    if raw in ("l2", "stale"):
        return "L2"
    return "origin"


@dataclass(frozen=True)
class City:
    name: str
    weight: float
    network: ipaddress.IPv4Network  # the city's demo GeoIP network; clients live inside


@dataclass
class SimConfig:
    requests: int | None = 2000  # stop after this many requests...
    duration: float | None = None  # ...or after this many seconds
    concurrency: int = 8
    clients_per_city: int = 8
    zipf_s: float = 1.1  # popularity exponent for inputs and models
    inputs: int = 1000  # distinct inputs per model
    models: tuple[str, ...] = ("ranker", "embedder")
    seed: int = 7
    kill: str | None = None  # an edge to kill at `kill_at` seconds...
    kill_at: float = 5.0
    restart_after: float | None = None  # ...and to start again this much later


@dataclass
class Sample:
    t: float  # seconds since the start
    city: str
    edge: str  # edge name ("?" when DNS failed)
    ok: bool
    tier: str
    latency_ms: float  # HTTP connect + request + response
    dns_ms: float | None  # when this request had to resolve first
    size: int  # response bytes


@dataclass
class StubCache:
    """One client's resolver cache: the answer and when it expires."""

    address: str | None = None
    expires: float = 0.0


def client_network(city: City, index: int) -> ipaddress.IPv4Network:
    """The /24 a resolver would send in ECS for the `index`-th client of `city`."""
    address = city.network[(index * 257) % city.network.num_addresses]
    return ipaddress.IPv4Network(f"{address}/24", strict=False)


def resolver_address(dns_host: str, city_index: int) -> str | None:
    """Where a city's resolver queries from. Each city has its own resolver, as real
    clients do, so the server's per-network rate limit (RRL, /24) sees one network per
    city, not the whole world in one; on a loopback server that is a /24 of 127/8 per
    city. Elsewhere the host's own address (None)."""
    try:
        server = ipaddress.ip_address(dns_host)
    except ValueError:  # a host name: its address is not known here
        return None
    if server.version != 4 or not server.is_loopback:
        return None
    return f"127.53.{city_index % 256}.1"


def zipf_weights(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def payload(model: str, item: int) -> dict:
    """A deterministic input per (model, item): the same item is the same cache key."""
    if model == "embedder":
        return {"model": model, "features": [item]}
    rng = np.random.default_rng(item)
    return {"model": model, "features": [round(float(x), 4) for x in rng.random(32)]}


@dataclass
class Simulation:
    topology: Topology
    cities: list[City]
    dns_server: tuple[str, int]
    config: SimConfig = field(default_factory=SimConfig)
    controller: Controller | None = None
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)

    async def run(self) -> list[Sample]:
        cfg = self.config
        rng = random.Random(cfg.seed)
        clients = [
            (city, client_network(city, i), resolver_address(self.dns_server[0], n))
            for n, city in enumerate(self.cities)
            for i in range(cfg.clients_per_city)
        ]
        weights = [c.weight / cfg.clients_per_city for c, _, _ in clients]
        caches = [StubCache() for _ in clients]
        item_p = zipf_weights(cfg.inputs, cfg.zipf_s)
        model_p = zipf_weights(len(cfg.models), cfg.zipf_s)
        np_rng = np.random.default_rng(cfg.seed)
        budget = cfg.requests if cfg.requests else 10**12
        deadline = cfg.duration if cfg.duration else float("inf")
        started = time.monotonic()
        issued = 0

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal issued
            while issued < budget and time.monotonic() - started < deadline:
                issued += 1
                idx = rng.choices(range(len(clients)), weights)[0]
                model = cfg.models[int(np_rng.choice(len(cfg.models), p=model_p))]
                item = int(np_rng.choice(cfg.inputs, p=item_p))
                await self._one(session, clients[idx], caches[idx], model, item, started)

        chaos = asyncio.create_task(self._chaos(started)) if cfg.kill else None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            await asyncio.gather(*(worker(session) for _ in range(cfg.concurrency)))
        if chaos:
            if self.events:  # once an edge is killed, the run ends with it restarted
                await chaos
            else:  # the load ended before the kill was due: nothing to undo
                chaos.cancel()
        return self.samples

    async def _one(self, session: aiohttp.ClientSession,
                   client: tuple[City, ipaddress.IPv4Network, str | None], cache: StubCache,
                   model: str, item: int, started: float) -> None:
        city, net, source = client
        now = time.monotonic()
        dns_ms = None
        if cache.address is None or now >= cache.expires:
            try:
                res = await self._resolve(str(net), source)
            except (ResolveError, DNSException, OSError, EOFError):
                self.samples.append(Sample(now - started, city.name, "?", False, "", 0, None, 0))
                return
            cache.address, cache.expires = res.addresses[0], now + res.ttl
            dns_ms = res.elapsed_ms
        site = self.topology.by_address(cache.address)
        edge = site.name if site else cache.address
        port = site.port if site else 8000
        t0 = time.perf_counter()
        try:
            url = f"http://{cache.address}:{port}/predict"
            async with session.post(url, json=payload(model, item)) as r:
                raw = await r.read()
                ok = r.status == 200
            body = json.loads(raw) if ok else {}
        except (TimeoutError, aiohttp.ClientError, ValueError):
            ok, raw, body = False, b"", {}
        latency = (time.perf_counter() - t0) * 1000
        tier = tier_of(body) if ok else ""
        self.samples.append(
            Sample(now - started, city.name, edge, ok, tier, latency, dns_ms, len(raw))
        )

    async def _resolve(self, ecs: str, source: str | None) -> Resolution:
        """As a stub resolver does (resolv.conf's defaults): 5 s, then once more."""
        left = STUB_ATTEMPTS
        while True:
            left -= 1
            try:
                return await resolve(self.topology.steered_name, self.dns_server, source,
                                     ecs=ecs, timeout=STUB_TIMEOUT_S)
            except DNSException:
                if left <= 0:
                    raise

    async def _chaos(self, started: float) -> None:
        cfg = self.config
        assert self.controller is not None and cfg.kill
        await asyncio.sleep(max(0.0, cfg.kill_at - (time.monotonic() - started)))
        # Recorded before the kill (no await between): from here on the run waits for
        # the restart instead of cancelling this task.
        self.events.append((time.monotonic() - started, f"killed {cfg.kill}"))
        await asyncio.to_thread(self.controller.kill, cfg.kill)
        if cfg.restart_after is not None:
            await asyncio.sleep(cfg.restart_after)
            await asyncio.to_thread(self.controller.restart, cfg.kill)
            self.events.append((time.monotonic() - started, f"restarted {cfg.kill}"))


# -- the report ----------------------------------------------------------------------


@dataclass
class Row:
    key: str
    requests: int
    failed: int
    tiers: dict[str, float]  # share of successful requests per tier
    p50: float
    p95: float
    p99: float
    offload: float  # share of response bytes served without going to the origin


def summarize(key: str, samples: list[Sample]) -> Row:
    ok = [s for s in samples if s.ok]
    lat = np.array([s.latency_ms for s in ok]) if ok else np.array([np.nan])
    tiers = {t: (sum(s.tier == t for s in ok) / len(ok) if ok else 0.0) for t in TIERS}
    total_bytes = sum(s.size for s in ok)
    cached_bytes = sum(s.size for s in ok if s.tier != "origin")
    p50, p95, p99 = (float(np.percentile(lat, q)) for q in (50, 95, 99))
    return Row(key, len(samples), len(samples) - len(ok), tiers, p50, p95, p99,
               cached_bytes / total_bytes if total_bytes else 0.0)


def table(title: str, rows: list[Row]) -> str:
    head = (f"| {title} | requests | failed | L1 | L2 | origin | p50 ms | p95 ms | p99 ms "
            "| origin offload |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r.key} | {r.requests} | {r.failed} | {r.tiers['L1']:.0%} | {r.tiers['L2']:.0%} "
            f"| {r.tiers['origin']:.0%} | {r.p50:.1f} | {r.p95:.1f} | {r.p99:.1f} "
            f"| {r.offload:.0%} |"
        )
    return "\n".join(lines)


def report(samples: list[Sample], elapsed: float) -> str:
    by_city: dict[str, list[Sample]] = defaultdict(list)
    by_edge: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_city[s.city].append(s)
        by_edge[s.edge].append(s)
    rows_city = [summarize(k, v) for k, v in sorted(by_city.items())]
    rows_edge = [summarize(k, v) for k, v in sorted(by_edge.items())]
    dns = [s.dns_ms for s in samples if s.dns_ms is not None]
    total = summarize("all", samples)
    lines = [
        f"{len(samples)} requests in {elapsed:.1f} s ({len(samples) / elapsed:.0f}/s), "
        f"{total.failed} failed; {len(dns)} DNS lookups, median "
        f"{(float(np.median(dns)) if dns else 0):.1f} ms",
        "",
        table("client region", rows_city + [total]),
        "",
        table("edge", rows_edge),
    ]
    return "\n".join(lines)


def plot(samples: list[Sample], events: list[tuple[float, str]], out_dir: Path,
         killed: str | None = None) -> list[Path]:
    """Latency distribution per client region by tier; with events, a failover timeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    cities = sorted({s.city for s in samples})
    colors = {"L1": "tab:green", "L2": "tab:blue", "origin": "tab:red"}
    ncols = 3 if len(cities) > 4 else 1
    nrows = -(-len(cities) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 2.5 * nrows), sharex=True,
                             squeeze=False)
    ok = [s for s in samples if s.ok]
    lows = [s.latency_ms for s in ok] or [1.0]
    bins = np.logspace(np.log10(max(0.1, min(lows))), np.log10(max(lows) * 1.05), 50)
    for ax, city in zip(axes.flat, cities, strict=False):
        for tier in TIERS:
            data = [s.latency_ms for s in ok if s.city == city and s.tier == tier]
            if data:
                ax.hist(data, bins=bins, alpha=0.55, color=colors[tier],
                        label=f"{tier} ({len(data)})")
        failed = sum(1 for s in samples if s.city == city and not s.ok)
        served = sorted({s.edge for s in ok if s.city == city})
        ax.set_title(f"{city} → {', '.join(served)}" + (f" ({failed} failed)" if failed else ""),
                     fontsize=10)
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes.flat[len(cities):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("requests")
    for col in range(ncols):  # the lowest panel of each column carries the x axis
        bottom = axes[(len(cities) - 1 - col) // ncols, col] if col < len(cities) else None
        if bottom is not None:
            bottom.xaxis.set_tick_params(labelbottom=True)
            bottom.set_xlabel("latency (ms, log scale)")
    fig.suptitle("Latency distribution per client region, by cache tier")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    paths = [out_dir / "simulate-latency.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    if events:
        paths.append(_timeline(plt, samples, events, killed, out_dir / "simulate-failover.png"))
    return paths


def _timeline(plt: ModuleType, samples: list[Sample], events: list[tuple[float, str]],
              killed: str | None, path: Path) -> Path:
    """Requests per second per edge over time: every client (top), and the clients that
    the killed edge was serving (bottom), with the failed requests as black bars."""
    end = max(s.t for s in samples)
    step = 0.5
    bins = np.arange(0, end + step, step)
    first_event = events[0][0] if events else end
    affected = {s.city for s in samples if s.edge == killed and s.t < first_event}
    panels = [("every client", samples)]
    if affected:
        panels.append((f"clients of {killed} ({', '.join(sorted(affected))})",
                       [s for s in samples if s.city in affected]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), sharex=True,
                             squeeze=False)
    edges = sorted({s.edge for s in samples if s.ok})
    colors = {e: plt.cm.tab10(i % 10) for i, e in enumerate(edges)}
    for ax, (title, group) in zip(axes[:, 0], panels, strict=True):
        for edge in edges:
            counts, _ = np.histogram([s.t for s in group if s.ok and s.edge == edge], bins)
            if counts.any():
                ax.plot(bins[:-1], counts / step, label=edge, color=colors[edge],
                        linewidth=1.6 if edge == killed else 1.0)
        failed, _ = np.histogram([s.t for s in group if not s.ok], bins)
        ax.bar(bins[:-1], failed / step, width=step, align="edge", color="black", alpha=0.55,
               label=f"failed ({int(failed.sum())})")
        for t, what in events:
            ax.axvline(t, color="red", linestyle="--")
            ax.annotate(f" {what}", (t, 1), xycoords=("data", "axes fraction"), color="red",
                        fontsize=8, va="top")
        ax.set_title(f"Requests per edge over time: {title}", fontsize=10)
        ax.set_ylabel("requests/s")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
