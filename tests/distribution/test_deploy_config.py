"""The deployments' own configuration, run live: docker-compose.yml's origin and edge
commands and the Kubernetes manifests' edge config, with their hostnames replaced by
loopback processes (`edge serve` subprocesses and a real Redis). An edge whose L1 is on
Redis db 1 must receive rollouts and purges from the origin's stream on db 0, and the
probes the files declare must take a draining edge out (while the health checker still
sees it as draining, not down)."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import redis
import tritonclient.grpc as tgrpc
import yaml
from disttest import TOKEN

from cdn.processes import stop_process
from cdn.redis_server import free_port
from edge.distribution.client import OriginClient
from geodns.steering.health_settings import HealthSettings
from healthcheck.probes import probe as health_probe

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FEATURES = [0.25] * 32


def compose_service(name: str) -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]


def k8s_docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / name).read_text()) if d]


def k8s_edge() -> tuple[dict, dict]:
    """(the edge config file, the edge container) of deploy/k8s/edge.yaml."""
    docs = {d["kind"]: d for d in k8s_docs("edge.yaml")}
    config = yaml.safe_load(docs["ConfigMap"]["data"]["edge.yaml"])
    return config, docs["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]


class Place:
    """Where the files' names point on this machine."""

    def __init__(self, tmp: Path, redis_port: int) -> None:
        self.tmp = tmp
        self.redis = f"redis://127.0.0.1:{redis_port}"
        self.origin = f"127.0.0.1:{free_port()}"
        self.edge = f"127.0.0.1:{free_port()}"
        self.grpc: dict[str, str] = {}  # an edge's HTTP listen → its gRPC listen

    def localize(self, text: str, listen: str) -> str:
        grpc = self.grpc.setdefault(listen, f"127.0.0.1:{free_port()}")
        # the k8s files' Redis requires a password (tests/stack/test_deploy_files.py
        # runs it); the Redis here does not
        return (text.replace("redis://:${CDN_REDIS_PASSWORD}@redis:6379", self.redis)
                .replace("redis://redis:6379", self.redis)
                .replace("http://origin:8000", f"http://{self.origin}")
                .replace("0.0.0.0:8000", listen)
                .replace("0.0.0.0:8001", grpc)
                .replace("/var/lib/geocdn", str(self.tmp / listen.replace(":", "-"))))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """start(argv, listen) → base URL of an `edge serve` child (answering /health)."""
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], listen: str) -> str:
        argv = [str(BIN / argv[0]), *argv[1:]]
        log = open(tmp_path / f"{listen.replace(':', '-')}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={
            **os.environ, "PYTHONUNBUFFERED": "1", "EDGE_ADMIN_TOKEN": TOKEN})
        procs.append(proc)
        return f"http://{listen}"

    yield start
    for proc in reversed(procs):
        stop_process(proc)


async def wait_health(http: aiohttp.ClientSession, url: str, timeout: float = 60.0) -> dict:
    """The /health document once it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with http.get(url + "/health") as r:
                if r.status == 200:
                    return await r.json()
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"{url}/health never answered 200"
        await asyncio.sleep(0.1)


async def predict(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.post(url + "/predict", json={"features": FEATURES}) as r:
        doc = await r.json()
        assert r.status == 200, doc
        return doc


def grpc_score(address: str) -> float:
    """The ranker's score for FEATURES over the Open Inference Protocol's gRPC, by
    Triton's own client."""
    client = tgrpc.InferenceServerClient(address)
    try:
        assert client.is_server_ready()
        features = tgrpc.InferInput("features", [1, len(FEATURES)], "FP32")
        features.set_data_from_numpy(np.array([FEATURES], dtype=np.float32))
        return float(client.infer("ranker", [features]).as_numpy("score")[0][0])
    finally:
        client.close()


async def ok_status(http: aiohttp.ClientSession, url: str) -> bool:
    return (await wait_health(http, url))["status"] == "ok"


async def until(check: Callable, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def start_compose_origin(place: Place, start: Callable) -> str:
    """The origin exactly as compose runs it: `edge make-models` then `edge serve`."""
    script = place.localize(compose_service("origin")["command"][2], place.origin)
    make, serve = (shlex.split(part.replace("exec ", "")) for part in script.split("&&"))
    subprocess.run([str(BIN / make[0]), *make[1:]], check=True, stdout=subprocess.DEVNULL)
    return start(serve, place.origin)


def edge_argv(flavour: str, place: Place) -> list[str]:
    if flavour == "compose":
        argv = compose_service("edge-tokyo")["command"]
        return shlex.split(place.localize(shlex.join(argv), place.edge))
    config, container = k8s_edge()
    path = place.tmp / "edge.yaml"
    path.write_text(place.localize(yaml.safe_dump(config), place.edge).replace(
        "/cache", str(place.tmp / "k8s-cache")))
    return [*container["command"][:-1], str(path)]


@pytest.mark.parametrize("flavour", ["compose", "k8s"])
async def test_edge_with_l1_on_db_1_gets_rollouts_and_purges(
        flavour, tmp_path, redis_server, processes, model_files):
    place = Place(tmp_path, redis_server.port)
    argv = edge_argv(flavour, place)
    l1_db = redis.Redis(port=redis_server.port, db=1)
    async with aiohttp.ClientSession() as http:
        origin = start_compose_origin(place, processes)
        await wait_health(http, origin)
        edge = processes(argv, place.edge)
        await until(lambda: ok_status(http, edge), timeout=60)
        first = await predict(http, edge)
        assert first["model_version"] == "1"
        assert (await predict(http, edge))["tier"] == "l1"
        assert l1_db.keys("edge:p/ranker/*"), "L1 entries live in db 1"
        # the gRPC port the file gives (8001) answers the same prediction
        assert await asyncio.to_thread(grpc_score, place.grpc[place.edge]) == \
            pytest.approx(first["prediction"], rel=1e-6)

        async with OriginClient(origin, TOKEN) as client:
            out = await client.publish(model_files.last_layer, "ranker", "2", activate=True)
            assert out["activate"]["announced"], out

            async def on_v2() -> bool:
                return (await predict(http, edge))["model_version"] == "2"
            await until(on_v2)
            v2 = await predict(http, edge)
            assert v2["tier"] == "l1" and v2["prediction"] != first["prediction"]

            out = await client.purge("tag", "model:ranker")
            assert out["announced"], out

            async def purged() -> bool:
                return (await predict(http, edge))["tier"] != "l1"
            await until(purged)
        await until(lambda: ok_status(http, edge), timeout=60)  # in step again


async def test_k8s_readiness_and_compose_healthcheck_fail_while_draining(
        tmp_path, redis_server, processes):
    place = Place(tmp_path, redis_server.port)
    _, container = k8s_edge()
    ready_path = container["readinessProbe"]["httpGet"]["path"]
    live_path = container["livenessProbe"]["httpGet"]["path"]
    compose_test = compose_service("edge-tokyo")["healthcheck"]["test"]
    assert compose_test[:2] == ["CMD", "python"]
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def compose_healthcheck(url: str) -> int:
        argv = [sys.executable, *[a.replace("http://127.0.0.1:8000", url)
                                  for a in compose_test[2:]]]
        return subprocess.run(argv, capture_output=True).returncode

    async with aiohttp.ClientSession() as http:
        origin = start_compose_origin(place, processes)
        await wait_health(http, origin)
        edge = processes(edge_argv("k8s", place), place.edge)
        await wait_health(http, edge)

        async def probe(path: str) -> int:
            async with http.get(edge + path) as r:
                return r.status

        assert await probe(ready_path) == 200
        assert compose_healthcheck(edge) == 0
        async with http.post(edge + "/admin/drain", json={"draining": True},
                             headers=auth) as r:
            assert r.status == 200, await r.text()
        assert await probe(ready_path) == 503
        async with http.get(edge + ready_path) as r:
            assert (await r.json())["status"] == "draining"  # the same document
        assert await probe(live_path) == 200  # alive: not restarted for draining
        checked = await health_probe(edge + "/health", HealthSettings(), http)
        assert checked.ok and checked.draining, checked  # the checker: draining, not down
        assert compose_healthcheck(edge) != 0
        await predict(http, edge)  # still serves the clients it has
        async with http.post(edge + "/admin/drain", json={"draining": False},
                             headers=auth) as r:
            assert r.status == 200
        assert await probe(ready_path) == 200
        assert compose_healthcheck(edge) == 0


async def test_compose_rollout_and_purge_reach_every_edge(
        tmp_path, redis_server, processes, model_files):
    """Every edge service of docker-compose.yml, each with its L1 on its own Redis db
    and the stream on db 0 as written: a rollout and a purge reach all of them."""
    place = Place(tmp_path, redis_server.port)
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    names = sorted(name for name in services if name.startswith("edge-"))
    assert len(names) >= 3
    async with aiohttp.ClientSession() as http:
        origin = start_compose_origin(place, processes)
        await wait_health(http, origin)
        edges: dict[str, tuple[str, int]] = {}
        for name in names:
            listen = f"127.0.0.1:{free_port()}"
            argv = shlex.split(place.localize(shlex.join(services[name]["command"]), listen))
            db = int(argv[argv.index("--redis") + 1].rsplit("/", 1)[1])
            edges[name] = (processes(argv, listen), db)
        assert len({db for _, db in edges.values()}) == len(edges)  # an L1 db each
        for url, db in edges.values():
            await until(lambda url=url: ok_status(http, url), timeout=60)
            assert (await predict(http, url))["model_version"] == "1"
            assert redis.Redis(port=redis_server.port, db=db).keys("edge:p/ranker/*")

        async with OriginClient(origin, TOKEN) as client:
            out = await client.publish(model_files.last_layer, "ranker", "2", activate=True)
            assert out["activate"]["announced"], out
            for url, _ in edges.values():
                async def on_v2(url: str = url) -> bool:
                    return (await predict(http, url))["model_version"] == "2"
                await until(on_v2)

            out = await client.purge("tag", "model:ranker")
            assert out["announced"], out
            for _, db in edges.values():  # nothing asks meanwhile: nothing refills L1
                async def emptied(db: int = db) -> bool:
                    return not redis.Redis(port=redis_server.port, db=db).keys(
                        "edge:p/ranker/*")
                await until(emptied)
