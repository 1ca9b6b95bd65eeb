"""The tier planner (``edge plan``): a cost model of the cache tiers as a simulation.

Replays an access log (text, one request per line: ``key [size_bytes]``) or a synthetic
Zipf trace through the node's own policies at several sizes: L1 is S3-FIFO (as
`edge.cache.memory`), L2 is LRU (as `edge.cache.disk`); an L1 miss asks L2, an L2 hit is
promoted to L1, a miss goes to the origin and fills both. Per size pair it prints the
hit ratio of each tier, the expected latency (each request costs the latency of the
tier that answered) and the monthly storage cost (size × $/GB-month per tier, plus the
origin holding every distinct object), then the cheapest pair that meets the hit-ratio
target (and latency bound, if given).
"""

from __future__ import annotations

import argparse
import heapq
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.cache.s3fifo import S3FIFO, Entry
from edge.config import ConfigError, parse_size

GB = 1024**3


class LRU:
    """Byte-bounded least-recently-used set (the L2 policy)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, int] = OrderedDict()
        self.bytes = 0

    def get(self, key: Hashable) -> bool:
        if key in self._items:
            self._items.move_to_end(key)
            return True
        return False

    def put(self, key: Hashable, size: int) -> None:
        if size > self.capacity:
            return
        self.bytes += size - self._items.pop(key, 0)
        self._items[key] = size
        while self.bytes > self.capacity:
            self.bytes -= self._items.popitem(last=False)[1]


def zipf_trace(objects: int, requests: int, alpha: float, seed: int = 1) -> np.ndarray:
    """Object ids 0..objects-1 drawn with P(rank k) ∝ 1/k^alpha, ids shuffled."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, objects + 1) ** alpha
    ranks = rng.choice(objects, size=requests, p=weights / weights.sum())
    return rng.permutation(objects)[ranks]


def s3fifo_hits(trace: Sequence, sizes: Sequence[int], capacity: int) -> list[bool]:
    cache = S3FIFO(capacity)
    hits = []
    for key, size in zip(trace, sizes, strict=True):
        hit = cache.get(key) is not None
        if not hit:
            cache.put(key, Entry(None, size, 0.0, ()))
        hits.append(hit)
    return hits


def lru_hits(trace: Sequence, sizes: Sequence[int], capacity: int) -> list[bool]:
    cache = LRU(capacity)
    hits = []
    for key, size in zip(trace, sizes, strict=True):
        hit = cache.get(key)
        if not hit:
            cache.put(key, size)
        hits.append(hit)
    return hits


def belady_hits(trace: Sequence, capacity_items: int) -> int:
    """Hits of the clairvoyant policy (evict the item reused furthest in the future) for
    equal-size items: the upper bound any online policy can reach."""
    n = len(trace)
    next_use = [n] * n
    last: dict = {}
    for i in range(n - 1, -1, -1):
        next_use[i] = last.get(trace[i], n)
        last[trace[i]] = i
    cached: dict = {}  # key -> its next use
    heap: list[tuple[int, Hashable]] = []  # (-next use, key), lazily cleaned
    hits = 0
    for i, key in enumerate(trace):
        if key in cached:
            hits += 1
        elif len(cached) >= capacity_items:
            while True:
                neg, victim = heapq.heappop(heap)
                if cached.get(victim) == -neg:
                    del cached[victim]
                    break
        cached[key] = next_use[i]
        heapq.heappush(heap, (-next_use[i], key))
    return hits


@dataclass(frozen=True)
class PlanRow:
    l1_bytes: int
    l2_bytes: int
    l1_hit: float
    l2_hit: float
    latency_ms: float
    monthly_cost: float

    @property
    def hit(self) -> float:
        return self.l1_hit + self.l2_hit


def plan(trace: Sequence, sizes: Sequence[int], l1_sizes: Iterable[int],
         l2_sizes: Iterable[int], prices: tuple[float, float, float],
         latencies_ms: tuple[float, float, float]) -> list[PlanRow]:
    n = len(trace)
    origin_bytes = sum(dict(zip(trace, sizes, strict=True)).values())
    rows = []
    for l1 in l1_sizes:
        l1_hit = s3fifo_hits(trace, sizes, l1)
        misses = [i for i, hit in enumerate(l1_hit) if not hit]
        miss_trace = [trace[i] for i in misses]
        miss_sizes = [sizes[i] for i in misses]
        h1 = (n - len(misses)) / n
        for l2 in l2_sizes:
            h2 = sum(lru_hits(miss_trace, miss_sizes, l2)) / n
            origin = 1 - h1 - h2
            latency = h1 * latencies_ms[0] + h2 * latencies_ms[1] + origin * latencies_ms[2]
            cost = (l1 * prices[0] + l2 * prices[1] + origin_bytes * prices[2]) / GB
            rows.append(PlanRow(l1, l2, h1, h2, latency, cost))
    return rows


def read_trace(path: Path, default_size: int) -> tuple[list[str], list[int]]:
    keys, sizes = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            keys.append(parts[0])
            try:
                sizes.append(int(parts[1]) if len(parts) > 1 else default_size)
            except ValueError:
                raise ConfigError(f"{path}:{lineno}: size must be an integer") from None
    if not keys:
        raise ConfigError(f"{path}: no requests in the trace")
    return keys, sizes


def _sizes(text: str) -> list[int]:
    return [parse_size(s) for s in text.split(",") if s.strip()]


def _human(n: int) -> str:
    for unit, factor in (("GiB", GB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:g}{unit}"
    return f"{n}B"


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", type=Path, help="access log: one 'key [size]' per line "
                   "(default: a synthetic Zipf trace)")
    p.add_argument("--objects", type=int, default=100_000, help="Zipf: distinct objects")
    p.add_argument("--requests", type=int, default=300_000, help="Zipf: requests")
    p.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent (default 0.9)")
    p.add_argument("--object-size", default="2KiB", help="size of objects without a size")
    p.add_argument("--l1-sizes", default="1MiB,4MiB,16MiB,64MiB")
    p.add_argument("--l2-sizes", default="16MiB,64MiB,256MiB,1GiB")
    p.add_argument("--prices", default="100,10,0.02",
                   help="$/GB-month of L1, L2, origin (default: 100,10,0.02)")
    p.add_argument("--latencies-ms", default="1,10,200",
                   help="latency of an answer from L1, L2, origin")
    p.add_argument("--target", type=float, default=0.8, help="edge hit-ratio target (L1+L2)")
    p.add_argument("--max-latency-ms", type=float, help="expected latency bound")
    p.add_argument("--seed", type=int, default=1)


def run_plan(args: argparse.Namespace) -> int:
    try:
        prices = tuple(float(x) for x in args.prices.split(","))
        latencies = tuple(float(x) for x in args.latencies_ms.split(","))
        if len(prices) != 3 or len(latencies) != 3:
            raise ValueError("--prices and --latencies-ms take three numbers")
        default_size = parse_size(args.object_size)
        l1_sizes, l2_sizes = _sizes(args.l1_sizes), _sizes(args.l2_sizes)
        if args.trace:
            trace, sizes = read_trace(args.trace, default_size)
        else:
            trace = zipf_trace(args.objects, args.requests, args.alpha, args.seed).tolist()
            sizes = [default_size] * len(trace)
    except (ConfigError, ValueError, OSError) as e:
        print(f"edge plan: {e}")
        return 2
    source = args.trace or f"Zipf alpha={args.alpha}, {args.objects} objects"
    print(f"trace: {source}, {len(trace)} requests, {len(set(trace))} distinct objects")
    print(f"prices $/GB-month L1/L2/origin: {prices}; latency ms: {latencies}")
    rows = plan(trace, sizes, l1_sizes, l2_sizes, prices, latencies)
    print(f"{'L1':>8} {'L2':>8} {'L1 hit':>7} {'L2 hit':>7} {'edge hit':>8} "
          f"{'latency ms':>10} {'$/month':>9}")
    for r in rows:
        print(f"{_human(r.l1_bytes):>8} {_human(r.l2_bytes):>8} {r.l1_hit:7.3f} {r.l2_hit:7.3f} "
              f"{r.hit:8.3f} {r.latency_ms:10.2f} {r.monthly_cost:9.4f}")
    ok = [r for r in rows if r.hit >= args.target
          and (args.max_latency_ms is None or r.latency_ms <= args.max_latency_ms)]
    if not ok:
        print(f"no size pair reaches hit ratio {args.target}"
              + (f" within {args.max_latency_ms} ms" if args.max_latency_ms else ""))
        return 1
    best = min(ok, key=lambda r: (r.monthly_cost, r.latency_ms))
    print(f"cheapest meeting the target {args.target}: L1 {_human(best.l1_bytes)}, "
          f"L2 {_human(best.l2_bytes)}: hit {best.hit:.3f}, {best.latency_ms:.2f} ms, "
          f"${best.monthly_cost:.4f}/month")
    return 0

