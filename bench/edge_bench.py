"""Load benchmark of one edge worker with wrk (Debian package `wrk`).

Measures, at 64 concurrent connections, requests/second and p50/p99 latency for:

* ceiling:     a bare aiohttp handler answering a fixed body (same loop: uvloop)
* l1-hit:      POST /predict, the same features every time (served from L1)
* l2-hit:      POST /predict over 2,000 prewarmed inputs with L1 too small to hold one
* miss-batch:  POST /predict, fresh random features each request (inference, max batch 64)
* miss-single: the same without batching (--max-batch 1)
* artifact:    GET a 64 KB artifact (embeddings.npy) from the node's store

Scenarios run in --runs interleaved rounds (default 5) of --seconds each (default 3);
the medians are printed. `--pin` is bench/dns_bench.py's "pinned" layout: every server
on CPU 1 and wrk on CPU 0 (taskset), so that the load generator and the server do not
preempt each other, which is what the tail latency otherwise mostly measures on 2 cores.
Usage: .venv/bin/python bench/edge_bench.py [--seconds 5] [--runs 3] [--connections 64]
       [--pin]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from cdn.processes import stop_process
from cdn.redis_server import free_port
from edge.modelgen import make_models
from wrk_runner import cycle_post, fixed_post, random_post, run_wrk

BARE_SERVER = textwrap.dedent("""
    import asyncio, sys, uvloop
    from aiohttp import web
    BODY = b'{"cached":true,"tier":"l1","prediction":0.5}'
    async def handler(request):
        await request.read()
        return web.Response(body=BODY, content_type="application/json")
    async def health(request):
        return web.Response(text="ok")
    async def main():  # started like `edge serve`: AppRunner, no access log, uvloop
        app = web.Application()
        app.router.add_post("/predict", handler)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1]), backlog=1024).start()
        await asyncio.Event().wait()
    uvloop.run(main())
""")

def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


SERVER_CPU, LOAD_CPU = "1", "0"  # for --pin
PIN = False


def start(args: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([*args[:1], *[a.replace("{port}", str(port)) for a in args[1:]]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    if PIN:  # all threads, including onnxruntime's
        subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPU, str(proc.pid)],
                       check=True, capture_output=True)
    return proc, url


def start_edge(tmp: Path, name: str, *flags: str) -> tuple[subprocess.Popen, str]:
    return start([sys.executable, "-m", "edge.cli", "serve", "--listen", "127.0.0.1:{port}",
                  "--models", str(tmp / "models"), "--cache-dir", str(tmp / name),
                  "--capacity", "1024", "--log-level", "WARNING", *flags])


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def features(i: int) -> list[float]:
    return [round(((i * 7919 + j * 104729) % 1000) / 1000, 3) for j in range(1, 33)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64, help="ranker hidden width")
    ap.add_argument("--only", help="comma-separated scenario name prefixes to run")
    ap.add_argument("--pin", action="store_true",
                    help="servers on CPU 1, wrk on CPU 0 (the pinned layout of bench/dns_bench.py)")
    args = ap.parse_args()
    global PIN
    PIN = args.pin
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    make_models(tmp / "models", hidden=args.hidden)
    procs: list[subprocess.Popen] = []
    try:
        bare, bare_url = start([sys.executable, "-c", BARE_SERVER, "{port}"])
        procs.append(bare)
        hits, hits_url = start_edge(tmp, "hits", "--no-fsync")
        procs.append(hits)
        l2, l2_url = start_edge(tmp, "l2", "--no-fsync", "--l1-bytes", "1")
        procs.append(l2)
        batch, batch_url = start_edge(tmp, "batch", "--no-fsync", "--max-batch", "64",
                                      "--max-queue-delay-ms", "2")
        procs.append(batch)
        single, single_url = start_edge(tmp, "single", "--no-fsync", "--max-batch", "1")
        procs.append(single)

        fixed = json.dumps({"features": features(1)})
        assert post(hits_url + "/predict", {"features": features(1)})["tier"] == "compute"
        assert post(hits_url + "/predict", {"features": features(1)})["tier"] == "l1"
        n_l2 = 2000
        for i in range(1, n_l2 + 1):
            post(l2_url + "/predict", {"features": features(i)})
        time.sleep(1)  # write-behind queue to disk
        assert post(l2_url + "/predict", {"features": features(5)})["tier"] == "l2"

        scenarios = [
            ("ceiling (bare aiohttp)", bare_url + "/predict", fixed_post(fixed)),
            ("l1-hit  POST /predict", hits_url + "/predict", fixed_post(fixed)),
            ("l2-hit  POST /predict", l2_url + "/predict", cycle_post(n_l2)),
            ("miss, batched (64, 2 ms)", batch_url + "/predict", random_post(1)),
            ("miss, unbatched", single_url + "/predict", random_post(2)),
            ("artifact GET 64 KB", hits_url + "/models/embedder/1/embeddings.npy", None),
        ]
        layout = "pinned (servers CPU 1, wrk CPU 0)" if PIN else "shared cores"
        print(f"one worker per server, wrk -t1 -c{args.connections}, {args.seconds}s x "
              f"{args.runs} runs, medians; ranker hidden={args.hidden}; {layout}")
        print(f"{'scenario':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        results = {}
        if args.only:
            wanted = args.only.split(",")
            scenarios = [s for s in scenarios if s[0].startswith(tuple(wanted))]
        runs: dict[str, list] = {name: [] for name, _, _ in scenarios}
        for _ in range(args.runs):  # rounds interleave the scenarios: fair under shared load
            for name, url, script in scenarios:
                runs[name].append(run_wrk(url, script, args.seconds, args.connections,
                                          LOAD_CPU if PIN else None))
        for name, measured in runs.items():
            rps, p50, p99 = (statistics.median(col) for col in zip(*measured, strict=True))
            results[name] = rps
            print(f"{name:28} {rps:9.0f} {p50:8.2f} {p99:8.2f}", flush=True)
        ratios = (("l1-hit  POST /predict", "ceiling (bare aiohttp)", "l1-hit / ceiling"),
                  ("miss, batched (64, 2 ms)", "miss, unbatched", "batched / unbatched"))
        for a, b, label in ratios:
            if a in results and b in results:
                print(f"{label}: {results[a] / results[b]:.2f}x")
    finally:
        for proc in procs:
            stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
