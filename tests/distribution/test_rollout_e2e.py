"""Must-show behaviour of the whole system: an origin and edges built by
`edge.app.build_app`, on loopback with a real Redis, driven over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from disttest import TOKEN

from cdn.redis_server import free_port
from edge.app import build_app
from edge.config import EdgeConfig
from edge.distribution.client import OriginClient
from edge.distribution.origin import DIST_KEY
from edge.distribution.samples import open_session
from edge.modelgen import write_ranker
from edge.node import NODE


class Node:
    def __init__(self, config: EdgeConfig, runner: web.AppRunner) -> None:
        self.config, self.runner = config, runner
        host, port = config.host_port
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def stack(tmp_path, redis_server):
    """start(**config) → a running node; the origin has the ranker v1 and a store."""
    nodes: list[Node] = []

    async def start(**overrides) -> Node:
        port = free_port()
        config = EdgeConfig().replace(**{
            "listen": f"127.0.0.1:{port}", "cache_dir": tmp_path / f"cache-{port}",
            "l2_fsync": False, "redis_url": redis_server.url, "admin_token": TOKEN,
            **overrides})
        runner = web.AppRunner(build_app(config), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        nodes.append(Node(config, runner))
        return nodes[-1]

    write_ranker(tmp_path / "origin-models", "1", seed=0)
    origin = await start(models_dir=tmp_path / "origin-models", dist_store=tmp_path / "store")
    start.origin = origin
    yield start
    for node in reversed(nodes):
        await node.stop()


async def health(http: aiohttp.ClientSession, node: Node) -> dict:
    async with http.get(node.url + "/health") as r:
        return await r.json()


async def wait_version(http, nodes, version: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        docs = [await health(http, n) for n in nodes]
        if all(d["models"].get("ranker") == version for d in docs):
            return
        assert time.monotonic() < deadline, docs
        await asyncio.sleep(0.05)


def reference(model_path) -> callable:
    session = open_session(str(model_path))
    return lambda rows: session.run(None, {"features": np.asarray(rows, np.float32)})[0][:, 0]


async def test_publish_activate_rollback_under_load(stack, model_files, tmp_path):
    """Zero failed requests; each batch answered wholly by the old or the new version."""
    edges = [await stack(upstream=stack.origin.url, region=f"e{i}") for i in (1, 2)]
    expected = {"1": reference(tmp_path / "origin-models" / "ranker" / "1" / "model.onnx"),
                "2": reference(model_files.last_layer)}
    results: list[tuple[int, dict, list]] = []
    stop = asyncio.Event()

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                edge = edges[rng.randrange(2)]
                rows = [[rng.uniform(-1, 1) for _ in range(32)] for _ in range(4)]
                async with http.post(edge.url + "/batch_predict",
                                     json={"features": rows}) as r:
                    results.append((r.status, await r.json(), rows))

    async with aiohttp.ClientSession() as http:
        for edge in edges:  # first requests: forwarded upstream, model loaded lazily
            async with http.post(edge.url + "/predict", json={"features": [0.0] * 32}) as r:
                assert r.status == 200
        await wait_version(http, edges, "1")
        clients = [asyncio.create_task(client(i)) for i in range(6)]

        async def answered_by(version: str) -> None:  # the load has met `version`
            deadline = time.monotonic() + 120
            while not any(doc.get("model_version") == version for _, doc, _ in results):
                assert time.monotonic() < deadline, f"no answer from version {version}"
                await asyncio.sleep(0.05)

        await answered_by("1")
        async with OriginClient(stack.origin.url, TOKEN) as origin:
            await origin.publish(model_files.last_layer, "ranker", "2", activate=True)
            await wait_version(http, [stack.origin, *edges], "2")
            await answered_by("2")
            await origin.rollback("ranker")
            await wait_version(http, [stack.origin, *edges], "1")
        answered, deadline = len(results), time.monotonic() + 120
        # some load after the rollback too, and more than 50 batches in all (however
        # slowly a busy machine answers them)
        while len(results) < max(answered + 6, 51):
            assert time.monotonic() < deadline and not any(c.done() for c in clients)
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*clients)

    failed = [(s, doc) for s, doc, _ in results if s != 200]
    assert not failed, failed[:3]
    versions = [doc["model_version"] for _, doc, _ in results]
    assert set(versions) == {"1", "2"}, "the load must have seen both versions"
    for _, doc, rows in results:  # every row of a batch computed by the claimed version
        assert np.allclose(doc["predictions"], expected[doc["model_version"]](rows),
                           atol=1e-5), doc


async def test_corrupt_transfer_is_rejected_and_old_version_serves(stack, model_files):
    edge = await stack(upstream=stack.origin.url, region="e1")
    store = stack.origin.runner.app[DIST_KEY].store
    async with aiohttp.ClientSession() as http:
        async with http.post(edge.url + "/predict", json={"features": [0.0] * 32}) as r:
            assert r.status == 200
        await wait_version(http, [edge], "1")
        async with OriginClient(stack.origin.url, TOKEN) as origin:
            await origin.publish(model_files.last_layer, "ranker", "2")
            for digest in store.manifest("ranker", "2").files["model"].blobs():
                path = store.blobs.path(digest)
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0x01  # one flipped bit in every variant
                path.write_bytes(bytes(data))
            await origin.activate("ranker", "2")
        deadline = time.monotonic() + 60
        while True:
            doc = await health(http, edge)
            error = doc["rollout"]["models"]["ranker"]["error"]
            if error:
                break
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.05)
        assert "2:" in error and doc["models"]["ranker"] == "1"
        async with http.post(edge.url + "/predict", json={"features": [0.5] * 32}) as r:
            assert r.status == 200 and (await r.json())["model_version"] == "1"
        async with http.get(edge.url + "/metrics") as r:
            text = await r.text()
        assert "dist_rollout_failures_total 1.0" in text.splitlines()
        assert any(line.startswith('dist_transfer_failures_total{variant="full"}')
                   for line in text.splitlines())


def serve(tmp_path, port: int, *args: str) -> subprocess.Popen:
    log = open(tmp_path / f"edge-{port}.log", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "serve", "--listen", f"127.0.0.1:{port}", *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def test_stopped_edge_catches_up_before_it_reports_ready(stack, model_files, tmp_path,
                                                               redis_server):
    """An `edge serve` process stopped during a purge and an activation applies both
    before /v2/health/ready says ready."""
    port = free_port()
    args = ("--upstream", stack.origin.url, "--redis", redis_server.url,
            "--cache-dir", str(tmp_path / "edge-cache"), "--no-fsync", "--region", "e1")
    url = f"http://127.0.0.1:{port}"
    proc = serve(tmp_path, port, *args)
    try:
        async with aiohttp.ClientSession() as http:
            await until_http_ready(http, url)
            body = {"features": [0.25] * 32}
            async with http.post(url + "/predict", json=body) as r:
                assert r.status == 200
            await wait_version_url(http, url, "1")
            async with http.post(url + "/predict", json=body) as r:  # cached now
                first = await r.json()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0
            async with OriginClient(stack.origin.url, TOKEN) as origin:
                await origin.purge("tag", "model:ranker")
                await origin.publish(model_files.last_layer, "ranker", "2", activate=True)
            proc = serve(tmp_path, port, *args)
            # The first moment it says ready, it must have applied both.
            await until_http_ready(http, url, step=0.005)
            doc = await health_url(http, url)
            assert doc["models"]["ranker"] == "2" and doc["status"] == "ok"
            assert doc["rollout"]["lag"] == 0 and doc["rollout"]["synced"]
            async with http.post(url + "/predict", json={**body, "version": "1"}) as r:
                old = await r.json()  # version 1 is still loaded (previous) ...
            assert old["model_version"] == "1" and not old["cached"]  # ... its entry purged
            assert first["cached"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


async def health_url(http, url: str) -> dict:
    async with http.get(url + "/health") as r:
        return await r.json()


async def until_http_ready(http, url: str, timeout: float = 120.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with http.get(url + "/v2/health/ready") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(step)
    raise AssertionError(f"{url} not ready")


async def wait_version_url(http, url: str, version: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while (await health_url(http, url))["models"].get("ranker") != version:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_int8_edge_runs_the_int8_variant(stack, model_files):
    """`prefer_int8`: the edge loads the INT8 file of a version published with one, and
    answers its misses with it (the upstream's FP32 answers belong to another digest)."""
    int8_edge = await stack(upstream=stack.origin.url, region="int8", prefer_int8=True)
    fp32_edge = await stack(upstream=stack.origin.url, region="fp32")
    store = stack.origin.runner.app[DIST_KEY].store
    async with aiohttp.ClientSession() as http, \
            OriginClient(stack.origin.url, TOKEN) as origin:
        await origin.publish(model_files.last_layer, "ranker", "2", int8=True, activate=True)
        # the fp32 edge holds no model yet: its first request loads it lazily
        for edge in (int8_edge, fp32_edge):
            async with http.post(edge.url + "/predict", json={"features": [0.1] * 32}) as r:
                assert r.status == 200
        await wait_version(http, [int8_edge, fp32_edge], "2")
        files = store.manifest("ranker", "2").files
        digests = {edge.config.region: edge.runner.app[NODE].registry.get("ranker").info.digest
                   for edge in (int8_edge, fp32_edge)}
        assert digests == {"int8": files["int8"].digest.removeprefix("sha256:"),
                           "fp32": files["model"].digest.removeprefix("sha256:")}
        answers = {}
        for edge in (int8_edge, fp32_edge):
            for _ in range(2):
                async with http.post(edge.url + "/predict",
                                     json={"features": [0.3] * 32}) as r:
                    answers.setdefault(edge.config.region, []).append(await r.json())
    assert [d["tier"] for d in answers["int8"]] == ["compute", "l1"]
    # (the origin computed it already when the int8 edge asked it, before it learned that
    # the origin runs another file for this version)
    assert [d["tier"] for d in answers["fp32"]] == ["upstream/l1", "l1"]
    int8_value, fp32_value = answers["int8"][0]["prediction"], answers["fp32"][0]["prediction"]
    assert int8_value != fp32_value and abs(int8_value - fp32_value) < 0.05


async def test_edge_publish_ships_the_config_json(stack, model_files, tmp_path):
    """`edge publish` sends the config.json beside the model file; every node then
    serves it as the artifact `current/config.json`."""
    edge = await stack(upstream=stack.origin.url, region="e1")
    folder = tmp_path / "ranker-2"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model_files.last_layer.read_bytes())
    config = {"name": "ranker", "version": "2", "description": "last layer tuned",
              "files": ["model.onnx", "config.json"]}
    (folder / "config.json").write_text(json.dumps(config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli", "publish", str(folder / "model.onnx"),
        "--name", "ranker", "--version", "2", "--activate", "--origin", stack.origin.url,
        env={**os.environ, "EDGE_ADMIN_TOKEN": TOKEN}, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    async with aiohttp.ClientSession() as http:
        async with http.post(edge.url + "/predict", json={"features": [0.0] * 32}) as r:
            assert r.status == 200
        await wait_version(http, [stack.origin, edge], "2")
        for node in (stack.origin, edge):
            for version in ("current", "2"):
                async with http.get(f"{node.url}/models/ranker/{version}/config.json") as r:
                    assert r.status == 200, (node.url, version, await r.text())
                    assert json.loads(await r.read()) == config


async def test_an_edge_on_the_wrong_stream_or_none_is_not_ok(stack, model_files,
                                                             redis_server):
    """The mistake the deployments once made: the edge reads the stream from another
    database than the origin writes to. It never hears of a new version, so it finds
    out by comparing with the origin, reports degraded (and catches up); an edge whose
    stream Redis cannot be reached is degraded too."""
    base = redis_server.url.rsplit("/", 1)[0]
    wrong = await stack(upstream=stack.origin.url, region="e1", dist_redis_url=f"{base}/5")
    lost = await stack(upstream=stack.origin.url, region="e2",
                       dist_redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with aiohttp.ClientSession() as http:
        for edge in (wrong, lost):
            async with http.post(edge.url + "/predict", json={"features": [0.0] * 32}) as r:
                assert r.status == 200
        await wait_version(http, [wrong], "1")
        deadline = time.monotonic() + 60
        while (await health(http, wrong))["status"] != "ok":  # synced with its stream
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        async with OriginClient(stack.origin.url, TOKEN) as origin:
            await origin.publish(model_files.last_layer, "ranker", "2", activate=True)
        seen = set()
        deadline = time.monotonic() + 60
        while True:
            doc = await health(http, wrong)
            seen.add(doc["status"])
            if "degraded" in seen and doc["models"].get("ranker") == "2":
                break
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.1)
        assert "ranker" in doc["rollout"]["last_error"]
        doc = await health(http, lost)
        assert doc["status"] == "degraded" and doc["rollout"]["connected"] is False, doc
