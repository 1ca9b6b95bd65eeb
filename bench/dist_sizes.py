"""Model distribution figures: transfer sizes of real updates, and propagation to 8 edges.

Part 1 (sizes): the example ranker (edge.modelgen, hidden 64, and a wider hidden-512
build) is updated two ways with a few real SGD steps in numpy on a synthetic ranking
task: (a) a fine-tune that moves every weight, (b) a retrained last layer only. For
each update it prints the file size, zstd of the full file, both delta methods
(zstd patch-from and bsdiff4), what the store chose (a delta only below 50% of the
compressed full file), and the same for the INT8 variants.

Part 2 (propagation): a real origin (aiohttp, distribution routes) and a real Redis
server; 8 edge agent *processes* (each a RolloutAgent with the edge's ModelRegistry and
its MemoryL1 + DiskL2 tiers, following the Redis stream). The operator's purge goes
through the origin's HTTP admin API; propagation is the time from just before that
call until the last of the 8 processes has applied the entry (same machine clock).
Reference in the same run: a plain pub/sub design, a Redis PUBLISH received by the
same 8 processes on a pub/sub channel (no catch-up, no HTTP, no durability).

    .venv/bin/python bench/dist_sizes.py [--edges 8] [--purges 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bsdiff4
import numpy as np
import onnx
from onnx import numpy_helper

from edge.distribution import transfer
from edge.distribution.quantize import quantize_int8
from edge.modelgen import IR_VERSION, ranker_model

# ----------------------------------------------------------------------------- sizes


def sgd_update(model: onnx.ModelProto, *, steps: int, lr: float, last_only: bool,
               seed: int = 1) -> onnx.ModelProto:
    """A few steps of SGD (binary cross-entropy) on a synthetic click task."""
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal(w["W0"].shape[0])
    for _ in range(steps):
        x = rng.standard_normal((256, w["W0"].shape[0]))
        y = (x @ teacher > 0).astype(np.float64)[:, None]
        z0 = x @ w["W0"] + w["b0"]
        h0 = np.maximum(z0, 0)
        z1 = h0 @ w["W1"] + w["b1"]
        h1 = np.maximum(z1, 0)
        p = 1 / (1 + np.exp(-(h1 @ w["W2"] + w["b2"])))
        g2 = (p - y) / len(x)
        grads = {"W2": h1.T @ g2, "b2": g2.sum(0)}
        if not last_only:
            g1 = (g2 @ w["W2"].T) * (z1 > 0)
            g0 = (g1 @ w["W1"].T) * (z0 > 0)
            grads |= {"W1": h0.T @ g1, "b1": g1.sum(0), "W0": x.T @ g0, "b0": g0.sum(0)}
        for k, g in grads.items():
            w[k] -= lr * g
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.ir_version = IR_VERSION
    for init in out.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(w[init.name].astype(np.float32), init.name))
    return out


def timed(fn, *args, runs: int = 3):
    """(result, median seconds over `runs`)."""
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def size_row(label: str, base: bytes, new: bytes) -> None:
    zfull = transfer.compress(new)
    patch_z, t_pz = timed(transfer.zstd_patch, base, new)
    patch_b, t_pb = timed(bsdiff4.diff, base, new)
    full_cost = len(zfull) if zfull else len(new)
    best = transfer.best_delta(base, new, full_cost)
    chosen = f"delta {best[0]}" if best else ("zstd full" if zfull else "plain full")
    chosen_size = len(best[1]) if best else full_cost
    print(f"  {label:<34} {len(new):>9,} {full_cost:>9,} ({full_cost / len(new):5.1%})"
          f" {len(patch_z):>9,} ({len(patch_z) / len(new):5.1%}) {len(patch_b):>9,}"
          f" ({len(patch_b) / len(new):5.1%})  -> {chosen}: {chosen_size:,} B"
          f" ({chosen_size / len(new):.1%} of the file)   [{t_pz * 1000:.0f} ms / "
          f"{t_pb * 1000:.0f} ms]")


def int8_bytes(model: onnx.ModelProto, tmp: Path, name: str) -> bytes:
    src, dst = tmp / f"{name}.onnx", tmp / f"{name}.int8.onnx"
    onnx.save(model, str(src))
    quantize_int8(src, dst)
    return dst.read_bytes()


def sizes() -> None:
    print("Transfer sizes (bytes; % of the uncompressed new file; delta build time "
          "zstd-patch / bsdiff4, median of 3)")
    print(f"  {'update':<34} {'file':>9} {'zstd full':>17} {'zstd-patch':>17} "
          f"{'bsdiff4':>17}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for hidden in (64, 512):
            v1 = ranker_model(seed=0, hidden=hidden)
            v1.ir_version = IR_VERSION
            base = v1.SerializeToString()
            ft = sgd_update(v1, steps=20, lr=0.05, last_only=False)
            ll = sgd_update(v1, steps=20, lr=0.05, last_only=True)
            print(f" ranker 32-{hidden}-{hidden}-1 ({len(base):,} B)")
            size_row("fine-tune (all weights, 20 SGD)", base, ft.SerializeToString())
            size_row("last layer only (20 SGD)", base, ll.SerializeToString())
            q1 = int8_bytes(v1, tmp, f"v1-{hidden}")
            size_row("INT8 of the fine-tune", q1, int8_bytes(ft, tmp, f"ft-{hidden}"))
            size_row("INT8 of the last-layer update", q1, int8_bytes(ll, tmp, f"ll-{hidden}"))


# ----------------------------------------------------------------------- propagation


async def worker(edge_id: str, origin: str, redis_url: str, folder: Path) -> None:
    """One edge agent process: prints a JSON line per applied entry / pub/sub message."""
    from redis.asyncio import Redis

    from edge.cache.disk import DiskL2
    from edge.cache.memory import MemoryL1
    from edge.cache.tiered import TieredCache
    from edge.distribution.agent import AgentConfig, RolloutAgent
    from edge.distribution.client import OriginClient
    from edge.distribution.events import EventStream
    from edge.distribution.node import CachePurger, RegistryModels
    from edge.distribution.placement import PlacementPolicy
    from edge.metrics import NodeMetrics
    from edge.registry import ModelRegistry

    def say(**kw) -> None:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()

    redis = Redis.from_url(redis_url)
    l2 = DiskL2(folder / "l2", 1 << 24, fsync=False)
    agent = RolloutAgent(
        AgentConfig(edge_id, folder / "agent", PlacementPolicy(pinned=frozenset({"ranker"}))),
        RegistryModels(ModelRegistry(), folder / "models"),
        CachePurger(TieredCache(MemoryL1(1 << 24), l2, l1_ttl_s=60, l2_ttl_s=600, grace_s=0,
                                metrics=NodeMetrics())),
        OriginClient(origin), EventStream(redis))
    agent.on_applied = lambda e: say(seq=e.seq, kind=e.kind, t=time.time())
    await agent.start()
    while not agent.ready:
        await asyncio.sleep(0.01)
    pubsub = redis.pubsub()
    await pubsub.subscribe("bench:pubsub")
    say(ready=True)
    async for msg in pubsub.listen():
        if msg["type"] == "message":
            say(pubsub=int(msg["data"]), t=time.time())


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def propagation(edges: int, purges: int, rounds: int) -> None:
    from aiohttp import web
    from redis.asyncio import Redis

    from cdn.redis_server import RedisServer, free_port
    from edge.distribution.client import OriginClient
    from edge.distribution.origin import add_distribution_routes

    server = RedisServer().start()
    redis = Redis.from_url(server.url)
    tmp = Path(tempfile.mkdtemp(prefix="dist-bench-"))
    app = web.Application()
    add_distribution_routes(app, tmp / "store", "bench-token", redis)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    origin = f"http://127.0.0.1:{port}"
    client = OriginClient(origin, "bench-token")
    model = tmp / "ranker.onnx"
    v1 = ranker_model(seed=0)
    v1.ir_version = IR_VERSION
    onnx.save(v1, str(model))
    await client.publish(model, "ranker", "1", activate=True)

    applied: dict[tuple[str, int], float] = {}
    received: dict[tuple[str, int], float] = {}
    procs = []
    ready = asyncio.Event()
    n_ready = 0

    async def follow(edge_id: str, proc) -> None:
        nonlocal n_ready
        async for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("ready"):
                n_ready += 1
                if n_ready == edges:
                    ready.set()
            elif "pubsub" in msg:
                received[(edge_id, msg["pubsub"])] = msg["t"]
            else:
                applied[(edge_id, msg["seq"])] = msg["t"]

    readers = []
    for i in range(edges):
        edge_id = f"bench-e{i + 1}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", edge_id, "--origin", origin,
            "--redis", server.url, "--dir", str(tmp / edge_id),
            stdout=asyncio.subprocess.PIPE)
        procs.append(proc)
        readers.append(asyncio.create_task(follow(edge_id, proc)))
    try:
        await asyncio.wait_for(ready.wait(), 120)
        ids = [f"bench-e{i + 1}" for i in range(edges)]

        async def wait_all(table, n) -> float:
            while not all((e, n) in table for e in ids):
                await asyncio.sleep(0.0005)
            return max(table[(e, n)] for e in ids)

        p50s, p99s, ref50s, ref99s = [], [], [], []
        counter = 0
        for r in range(rounds):
            stream_t, ref_t, api_t = [], [], []
            for _ in range(purges):
                t0 = time.time()
                out = await client.purge("tag", f"bench:{r}")
                api_t.append(time.time() - t0)
                stream_t.append(await wait_all(applied, out["event"]["seq"]) - t0)
                counter += 1
                t0 = time.time()
                await redis.publish("bench:pubsub", counter)
                ref_t.append(await wait_all(received, counter) - t0)
            p50s.append(pct(stream_t, 0.5))
            p99s.append(pct(stream_t, 0.99))
            ref50s.append(pct(ref_t, 0.5))
            ref99s.append(pct(ref_t, 0.99))
            print(f"  round {r + 1}: purge via origin API + stream p50 {p50s[-1] * 1000:.2f} ms"
                  f" p99 {p99s[-1] * 1000:.2f} ms (of which the API call p50 "
                  f"{pct(api_t, 0.5) * 1000:.2f} ms) | pub/sub p50 {ref50s[-1] * 1000:.2f} ms"
                  f" p99 {ref99s[-1] * 1000:.2f} ms")
        print(f"Purge propagation to all {edges} edge processes ({purges} purges x {rounds}"
              f" rounds, medians of the rounds):")
        print(f"  origin admin API -> Redis stream -> applied to L1+L2 on all edges: "
              f"p50 {statistics.median(p50s) * 1000:.2f} ms, "
              f"p99 {statistics.median(p99s) * 1000:.2f} ms")
        print(f"  reference, Redis PUBLISH -> received by all edges (pub/sub): "
              f"p50 {statistics.median(ref50s) * 1000:.2f} ms, "
              f"p99 {statistics.median(ref99s) * 1000:.2f} ms")

        # a real model update: publish v2 (last layer) and activate it everywhere
        v2 = tmp / "ranker2.onnx"
        onnx.save(sgd_update(ranker_model(seed=0), steps=20, lr=0.05, last_only=True), str(v2))
        t0 = time.time()
        out = await client.publish(v2, "ranker", "2", activate=True)
        t_pub = time.time() - t0
        done = await wait_all(applied, out["activate"]["event"]["seq"])
        print(f"Activation of a new version on all {edges} edges (delta download, verify, "
              f"load, warm, swap): {(done - t0) * 1000:.0f} ms after the publish call "
              f"started (publish itself {t_pub * 1000:.0f} ms)")
        t0 = time.time()
        out = await client.rollback("ranker")
        done = await wait_all(applied, out["event"]["seq"])
        print(f"Rollback on all {edges} edges (previous version still loaded): "
              f"{(done - t0) * 1000:.1f} ms")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
        for t in readers:
            t.cancel()
        await client.close()
        await runner.cleanup()
        await redis.aclose()
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, default=8)
    p.add_argument("--purges", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--skip-sizes", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--origin", help=argparse.SUPPRESS)
    p.add_argument("--redis", help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker, args.origin, args.redis, args.dir))
        return
    if not args.skip_sizes:
        sizes()
    asyncio.run(propagation(args.edges, args.purges, args.rounds))


if __name__ == "__main__":
    main()
