"""Model artifacts: ETag = SHA-256, 304, byte ranges, HEAD, edge cache filled from the
upstream, and broken transfers that never land in the cache."""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web

from cdn.redis_server import free_port

EMB = "/models/embedder/1/embeddings.npy"


async def test_artifacts_through_an_edge(start_node, http, models_dir, tmp_path):
    origin = await start_node(models_dir=models_dir)
    edge = await start_node(upstream=origin.url, cache_dir=tmp_path / "edge")
    data = (models_dir / "embedder/1/embeddings.npy").read_bytes()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'

    results = await asyncio.gather(*(http.get(edge.url + EMB) for _ in range(5)))
    for r in results:
        assert r.status == 200 and await r.read() == data
        assert r.headers["ETag"] == etag
        assert "immutable" in r.headers["Cache-Control"]
        r.release()
    assert len(list((tmp_path / "edge/artifacts").rglob("embeddings.npy"))) == 1

    async with http.get(edge.url + EMB, headers={"If-None-Match": etag}) as r:
        assert r.status == 304 and await r.read() == b""
    async with http.get(edge.url + EMB, headers={"Range": "bytes=10-19"}) as r:
        assert r.status == 206 and await r.read() == data[10:20]
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    async with http.get(edge.url + EMB, headers={"Range": "bytes=-7"}) as r:
        assert r.status == 206 and await r.read() == data[-7:]
    async with http.get(edge.url + EMB, headers={"Range": "bytes=5-9", "If-Range": etag}) as r:
        assert r.status == 206 and await r.read() == data[5:10]
    async with http.get(edge.url + EMB, headers={"Range": "bytes=5-9", "If-Range": '"old"'}) as r:
        assert r.status == 200 and await r.read() == data
    async with http.get(edge.url + EMB, headers={"Range": f"bytes={len(data)}-"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    async with http.head(edge.url + EMB) as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)
    async with http.get(edge.url + "/models/embedder/current/embeddings.npy") as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-cache"
        assert r.headers["ETag"] == etag
    async with http.get(edge.url + "/models/embedder/1/missing.bin") as r:
        assert r.status == 404 and "no artifact" in (await r.json())["error"]
    async with http.get(edge.url + "/models/embedder/1/..%2Fconfig.json") as r:
        assert r.status == 404

    await origin.stop()  # the edge keeps serving what it holds
    async with http.get(edge.url + EMB, headers={"Range": "bytes=0-3"}) as r:
        assert r.status == 206 and await r.read() == data[:4]
    async with http.get(edge.url + "/models/ranker/1/model.onnx") as r:
        assert r.status == 503


async def broken_upstream(mode: str) -> tuple[web.AppRunner, str]:
    """An HTTP server that misbehaves as an upstream might (not a project component)."""
    body = b"x" * 100_000

    async def handler(request: web.Request) -> web.StreamResponse:
        etag = {} if mode == "no-etag" else {"ETag": '"' + "ab" * 32 + '"'}
        resp = web.StreamResponse(headers=etag)
        resp.content_length = len(body)
        await resp.prepare(request)
        if mode == "truncated":
            await resp.write(body[:50_000])
            request.transport.close()
            return resp
        await resp.write(body)  # complete, but not what the ETag promises (or no ETag)
        return resp

    app = web.Application()
    app.router.add_get("/models/{n}/{v}/{f}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_partial_or_corrupt_upstream_fetch_never_lands(start_node, http, tmp_path):
    for mode in ("truncated", "wrong-digest", "no-etag"):
        runner, url = await broken_upstream(mode)
        edge = await start_node(upstream=url, cache_dir=tmp_path / mode)
        async with http.get(edge.url + "/models/big/1/weights.bin") as r:
            assert r.status == 503, mode
            assert "error" in await r.json()
        files = [p for p in (tmp_path / mode / "artifacts").rglob("*") if p.is_file()]
        assert files == [], (mode, files)
        await runner.cleanup()


async def test_range_edge_cases_follow_rfc_9110(start_node, http, models_dir):
    origin = await start_node(models_dir=models_dir)
    data = (models_dir / "embedder/1/embeddings.npy").read_bytes()
    async with http.get(origin.url + EMB, headers={"Range": "bytes=-0"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    async with http.get(origin.url + EMB, headers={"Range": "bytes=-5"}) as r:
        assert r.status == 206 and await r.read() == data[-5:]
    for ignored in ("items=0-5", "bytes=5-2", "bytes=abc", "bytes=-", "bytes=²-3"):
        async with http.get(origin.url + EMB, headers={"Range": ignored}) as r:
            assert r.status == 200 and await r.read() == data, ignored
            assert "Content-Range" not in r.headers


async def test_hop_guard_rejects_negative_and_garbage_counts(start_node, http, models_dir):
    origin = await start_node(models_dir=models_dir)
    edge = await start_node(upstream=origin.url)
    for bad in ("-1000", "-1", "1e3", "x", "٣"):
        headers = {"X-Edge-Hops": bad}
        async with http.get(edge.url + EMB, headers=headers) as r:
            assert r.status == 400 and "X-Edge-Hops" in (await r.json())["error"], bad
        async with http.post(edge.url + "/predict", json={"features": [0.0] * 32},
                             headers=headers) as r:
            assert r.status == 400, bad
    for looped in ("9", "99999999999999999999"):
        async with http.get(edge.url + EMB, headers={"X-Edge-Hops": looped}) as r:
            assert r.status == 508, looped
    async with http.get(edge.url + EMB, headers={"X-Edge-Hops": "2"}) as r:
        assert r.status == 200
