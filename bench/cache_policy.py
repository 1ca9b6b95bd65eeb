"""L1 eviction on a skewed trace: S3-FIFO (the node's L1) against LRU and against
Bélády's clairvoyant optimum, on Zipf traces of equal-size objects.

Prints the hit ratio of each policy per Zipf exponent and cache size (as a share of the
distinct objects), the median over --seeds traces.
Usage: .venv/bin/python bench/cache_policy.py [--objects 100000] [--requests 1000000]
"""

from __future__ import annotations

import argparse
import statistics

from edge.planner import belady_hits, lru_hits, s3fifo_hits, zipf_trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--alphas", default="0.7,0.9,1.1")
    ap.add_argument("--cache-shares", default="0.001,0.01,0.1")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(f"Zipf traces: {args.objects} objects, {args.requests} requests, "
          f"median of {args.seeds} seeds; hit ratios")
    print(f"{'alpha':>5} {'cache':>7} {'LRU':>7} {'S3-FIFO':>8} {'Belady':>7} "
          f"{'S3-FIFO gain':>12} {'of optimum':>10}")
    for alpha in (float(a) for a in args.alphas.split(",")):
        traces = [zipf_trace(args.objects, args.requests, alpha, seed).tolist()
                  for seed in range(1, args.seeds + 1)]
        sizes = [1] * args.requests
        for share in (float(s) for s in args.cache_shares.split(",")):
            capacity = max(1, int(args.objects * share))
            lru = statistics.median(sum(lru_hits(t, sizes, capacity)) for t in traces)
            s3 = statistics.median(sum(s3fifo_hits(t, sizes, capacity)) for t in traces)
            opt = statistics.median(belady_hits(t, capacity) for t in traces)
            n = args.requests
            print(f"{alpha:5.1f} {share:7.1%} {lru / n:7.3f} {s3 / n:8.3f} {opt / n:7.3f} "
                  f"{(s3 - lru) / n:+12.3f} {s3 / opt:10.1%}", flush=True)


if __name__ == "__main__":
    main()
