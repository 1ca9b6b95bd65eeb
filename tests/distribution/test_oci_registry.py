"""Model versions through a real OCI registry (Debian's `docker-registry` on loopback):
`edge publish --oci` pushes each version, an edge fetches its files from the registry
by digest and activates them, a layer the registry has is never uploaded again, and a
blob changed in the registry's storage is rejected (the edge falls back to the origin)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from disttest import TOKEN

from cdn.processes import stop_process
from cdn.redis_server import free_port
from edge.app import build_app
from edge.config import EdgeConfig
from edge.distribution.blobs import sha256_file
from edge.distribution.oci import Registry, RegistryError
from edge.modelgen import write_ranker

EDGE = str(Path(sys.executable).parent / "edge")


class RegistryServer:
    def __init__(self, binary: str, root: Path, htpasswd: Path | None = None) -> None:
        self.port = free_port()
        self.root = root
        root.mkdir(parents=True)
        self.log = root / "registry.log"
        auth = f"auth:\n  htpasswd:\n    realm: geocdn-test\n    path: {htpasswd}\n" \
            if htpasswd else ""
        (root / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n" + auth)
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([binary, "serve", str(root / "config.yml")],
                                         stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/geocdn/models"

    def requests(self, method: str, digest: str) -> int:
        """How many `method` requests the registry logged for blob `digest` (uploads are
        POST + PUT .../uploads/...?digest=..., downloads GET .../blobs/<digest>)."""
        pattern = re.compile(rf'http\.request\.method={method} .*http\.request\.uri="[^"]*'
                             + re.escape(digest.replace(":", "%3A") if method == "PUT"
                                         else digest))
        return sum(1 for line in self.log.read_text().splitlines()
                   if "response completed" in line and pattern.search(line))

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return (self.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
                / hexdigest[:2] / hexdigest / "data")


def started(server: RegistryServer) -> RegistryServer:
    deadline = time.monotonic() + 30
    while "listening on" not in server.log.read_text():
        assert server.proc.poll() is None, server.log.read_text()
        assert time.monotonic() < deadline, "the registry did not start"
        time.sleep(0.05)
    return server


@pytest.fixture
def registry(system_program, tmp_path) -> Iterator[RegistryServer]:
    server = started(RegistryServer(system_program("docker-registry", "docker-registry"),
                                    tmp_path / "registry"))
    yield server
    stop_process(server.proc, grace=5)


PASSWORD = "p@ss w/rd:%"  # every character a URL treats specially


@pytest.fixture
def private_registry(system_program, tmp_path) -> Iterator[RegistryServer]:
    """A registry that requires a user and password (htpasswd, bcrypt, as Apache's
    htpasswd writes it)."""
    out = subprocess.run([system_program("htpasswd", "apache2-utils"), "-Bbn", "ci",
                          PASSWORD], capture_output=True, text=True, check=True)
    (tmp_path / "htpasswd").write_text(out.stdout)
    server = started(RegistryServer(system_program("docker-registry", "docker-registry"),
                                    tmp_path / "registry", htpasswd=tmp_path / "htpasswd"))
    yield server
    stop_process(server.proc, grace=5)


async def publish(origin: str, model: Path, version: str, registry: RegistryServer,
                  *flags: str) -> str:
    """`edge publish ... --oci`, run beside this event loop (the origin runs in it)."""
    out = await asyncio.to_thread(
        subprocess.run,
        [EDGE, "publish", str(model), "--name", "ranker", "--version", version, *flags,
         "--origin", origin, "--oci", registry.url],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "EDGE_ADMIN_TOKEN": TOKEN})
    assert out.returncode == 0, out.stderr
    assert f"pushed to 127.0.0.1:{registry.port}/geocdn/models:ranker-{version}" in out.stdout
    return out.stdout


async def start(tmp_path: Path, name: str, **settings) -> tuple[str, web.AppRunner]:
    port = free_port()
    config = EdgeConfig().replace(**{
        "listen": f"127.0.0.1:{port}", "cache_dir": tmp_path / f"cache-{name}",
        "l2_fsync": False, "admin_token": TOKEN, "region": name, **settings})
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", runner


async def serves(http: aiohttp.ClientSession, edge: str, version: str) -> bool:
    async with http.get(edge + "/health") as r:
        return (await r.json())["models"].get("ranker") == version


async def until_serves(http: aiohttp.ClientSession, edge: str, version: str) -> None:
    deadline = time.monotonic() + 60
    while not await serves(http, edge, version):
        assert time.monotonic() < deadline, f"the edge never served ranker {version}"
        await asyncio.sleep(0.1)


def same_weights(v1: Path, folder: Path, version: str) -> Path:
    """Version `version` with v1's weights and its own config.json (a config-only change)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(v1.read_bytes())
    config = json.loads((v1.parent / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "version": version}))
    return folder / "model.onnx"


async def test_versions_travel_through_the_registry(registry, redis_server, tmp_path):
    write_ranker(tmp_path / "origin-models", "1", seed=0)
    v1 = tmp_path / "origin-models" / "ranker" / "1" / "model.onnx"
    v2 = same_weights(v1, tmp_path / "v2", "2")
    v3 = write_ranker(tmp_path / "v3", "3", seed=2)
    v4 = write_ranker(tmp_path / "v4", "4", seed=3)
    origin, origin_runner = await start(
        tmp_path, "origin", models_dir=tmp_path / "origin-models",
        dist_store=tmp_path / "store", redis_url=redis_server.url)
    edge, edge_runner = await start(tmp_path, "edge", upstream=origin,
                                    redis_url=redis_server.url, oci_registry=registry.url)
    try:
        async with aiohttp.ClientSession() as http:
            await publish(origin, v1, "1", registry)  # the origin has it: only the push is new
            async with http.post(edge + "/predict", json={"features": [0.0] * 32}) as r:
                assert r.status == 200  # the edge loads the ranker: from the registry
            await until_serves(http, edge, "1")
            assert registry.requests("GET", sha256_file(v1)) == 1

            await publish(origin, v2, "2", registry, "--activate")  # a new config, the same weights
            await until_serves(http, edge, "2")
            assert registry.requests("PUT", sha256_file(v1)) == 1  # weights sent once
            assert registry.requests("PUT", sha256_file(v2.parent / "config.json")) == 1
            await publish(origin, v2, "2", registry)  # again: nothing new to upload
            assert registry.requests("PUT", sha256_file(v2.parent / "config.json")) == 1

            await publish(origin, v3, "3", registry, "--activate")
            await until_serves(http, edge, "3")
            assert registry.requests("GET", sha256_file(v3)) == 1

            # A byte flipped in the registry's copy of v4: the edge rejects the blob and
            # takes the file from the origin instead; what it runs has the right digest.
            await publish(origin, v4, "4", registry)
            blob = registry.blob_file(sha256_file(v4))
            data = bytearray(blob.read_bytes())
            data[len(data) // 2] ^= 0x01
            blob.write_bytes(bytes(data))
            async with http.post(origin + "/dist/v1/models/ranker/activate",
                                 json={"version": "4"},
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200, await r.text()
            await until_serves(http, edge, "4")
            async with http.get(edge + "/metrics") as r:
                metrics = await r.text()
            assert re.search(r'dist_transfer_failures_total\{variant="registry"\} [1-9]', metrics)
            async with http.post(edge + "/predict", json={"features": [0.0] * 32}) as r:
                doc = await r.json()
                assert r.status == 200 and doc["model_version"] == "4", doc
    finally:
        await edge_runner.cleanup()
        await origin_runner.cleanup()


def test_a_registry_that_requires_a_password(private_registry, tmp_path, monkeypatch):
    """Credentials in the URL (a password from the environment) reach the registry as
    its authentication, never its host, a repr or a message; without them, or with a
    wrong one, nothing is pushed or read."""
    weights = write_ranker(tmp_path / "v1", "1", seed=0)
    config = weights.parent / "config.json"
    address = f"127.0.0.1:{private_registry.port}"
    monkeypatch.setenv("GEOCDN_TEST_OCI_PASSWORD", PASSWORD)
    registry = Registry.parse(f"http://ci:${{GEOCDN_TEST_OCI_PASSWORD}}@{address}/geocdn/m")
    assert (registry.host, registry.username, registry.password) == (address, "ci", PASSWORD)
    assert PASSWORD not in repr(registry) and "ci" not in repr(registry)

    for who, words in (("", "requires a user and password"),
                       ("ci:wrong@", "UNAUTHORIZED|HTTP 401")):
        outsider = Registry.parse(f"http://{who}{address}/geocdn/m")
        with pytest.raises(RegistryError, match=words) as err:
            outsider.push("ranker", "1", weights, config)
        assert "wrong" not in str(err.value)
    assert private_registry.requests("PUT", sha256_file(weights)) == 0

    assert registry.push("ranker", "1", weights, config) == f"{address}/geocdn/m:ranker-1"
    assert private_registry.requests("PUT", sha256_file(weights)) == 1
    assert registry.blob(sha256_file(weights), 10**8) == weights.read_bytes()
    with pytest.raises(RegistryError):
        Registry.parse(f"http://{address}/geocdn/m").blob(sha256_file(weights), 10**8)


@pytest.mark.parametrize("url, words", [
    ("http://ci:s3cret@127.0.0.1:1", "'http://ci:***@127.0.0.1:1': name a registry"),
    ("http://ci@127.0.0.1:1/m", "name a registry as http(s)://[USER:PASSWORD@]HOST"),
    ("http://ci:${GEOCDN_TEST_UNSET}@127.0.0.1:1/m", "names ${GEOCDN_TEST_UNSET}, which is"),
])
def test_bad_registry_urls_say_what_is_wrong_without_the_password(url, words):
    with pytest.raises(RegistryError) as err:
        Registry.parse(url)
    assert words in str(err.value) and "s3cret" not in str(err.value)
