"""The origin's distribution API over real HTTP: auth, publishing, downloads, safety."""

from __future__ import annotations

import aiohttp
import pytest

from edge.distribution.blobs import sha256_bytes
from edge.distribution.client import OriginClient
from edge.distribution.errors import Conflict, NotFound
from edge.distribution.events import STREAM_KEY


async def test_mutations_need_the_token_and_change_nothing_without_it(origin, model_files):
    body = model_files.v1.read_bytes()
    base = origin.url + "/dist/v1"
    async with aiohttp.ClientSession() as http:
        calls = [("PUT", "/models/ranker/versions/1", {"data": body}),
                 ("POST", "/models/ranker/activate", {"json": {"version": "1"}}),
                 ("POST", "/models/ranker/rollback", {}),
                 ("POST", "/purge", {"json": {"prefix": ""}}),
                 ("GET", "/rollout", {})]
        for method, path, kw in calls:
            async with http.request(method, base + path, **kw) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"] == "Bearer"
            async with http.request(method, base + path, headers={"Authorization": "Bearer no"},
                                    **kw) as r:
                assert r.status == 403, path
            cross_site = {"Authorization": "Bearer s3cret-token", "Sec-Fetch-Site": "cross-site"}
            async with http.request(method, base + path, headers=cross_site, **kw) as r:
                assert r.status == 403, path
    assert origin.store.models() == []
    assert await origin.redis.xlen(STREAM_KEY) == 0


async def test_publish_activate_rollback_over_http(origin, model_files):
    async with origin.client() as c:
        out = await c.publish(model_files.v1, "ranker", "1", activate=True)
        assert out["created"] and out["activate"]["announced"]
        out = await c.publish(model_files.last_layer, "ranker", "2", stage=True)
        assert out["manifest"]["files"]["model"]["deltas"][0]["base_version"] == "1"
        await c.activate("ranker", "2")
        summary = await c.summary()
        assert summary["ranker"]["current"] == "2"
        assert summary["ranker"]["digest"] == sha256_bytes(model_files.last_layer.read_bytes())
        rolled = await c.rollback("ranker")
        assert rolled["pointer"]["current"] == "1"
        with pytest.raises(Conflict):
            await c.publish(model_files.finetune, "ranker", "1")
        with pytest.raises(NotFound):
            await c.activate("ranker", "7")
    kinds = [f[b"kind"] for _, f in await origin.redis.xrange(STREAM_KEY)]
    assert kinds == [b"activate", b"stage", b"activate", b"rollback"]


async def test_blobs_and_manifests_carry_their_digest_as_etag(origin, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1")
    digest = sha256_bytes(model_files.v1.read_bytes())
    url = f"{origin.url}/dist/v1/blobs/sha256/{digest[7:]}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            assert r.status == 200 and r.headers["ETag"] == f'"{digest}"'
            assert sha256_bytes(await r.read()) == digest
        async with http.get(url, headers={"If-None-Match": f'"{digest}"'}) as r:
            assert r.status == 304
        murl = f"{origin.url}/dist/v1/models/ranker/versions/1"
        async with http.get(murl) as r:
            body = await r.read()
            assert r.headers["ETag"] == f'"{sha256_bytes(body)}"'


@pytest.mark.parametrize("path", [
    "/dist/v1/models/..%2F..%2Fetc/versions/1",
    "/dist/v1/models/ranker/versions/..%2Fpointer",
    "/dist/v1/models/ranker/versions/%2Fetc%2Fpasswd",
    "/dist/v1/blobs/sha256/..%2F..%2F..%2F.lock",
    "/dist/v1/blobs/sha256/ABC",
])
async def test_paths_from_requests_cannot_escape_the_store(origin, model_files, path):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1")
    async with aiohttp.ClientSession() as http:
        async with http.get(origin.url + path) as r:
            assert r.status in (400, 404)
            assert "ranker" not in (await r.text()).split("error")[0]
        async with http.put(origin.url + path, data=b"x",
                            headers={"Authorization": "Bearer s3cret-token"}) as r:
            assert r.status in (400, 404, 405)
    assert origin.store.versions("ranker") == ["1"]


async def test_bad_bodies_get_clear_4xx(origin, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
    auth = {"Authorization": "Bearer s3cret-token"}
    base = origin.url + "/dist/v1"
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.put(base + "/models/ranker/versions/2", data=b"garbage") as r:
            assert r.status == 422 and "not a valid ONNX model" in (await r.json())["error"]
        async with http.put(base + "/models/ranker/versions/2", data=b"") as r:
            assert r.status == 400
        async with http.post(base + "/purge", json={"key": "a", "tag": "b"}) as r:
            assert r.status == 400
        async with http.post(base + "/models/ranker/activate", data=b"{not json") as r:
            assert r.status == 400
    assert origin.store.versions("ranker") == ["1"]


async def test_purge_without_redis_is_refused(tmp_path, unused_port, model_files):
    from aiohttp import web

    from edge.distribution.origin import add_distribution_routes

    app = web.Application()
    add_distribution_routes(app, tmp_path / "store", "t", None)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_port).start()
    try:
        async with OriginClient(f"http://127.0.0.1:{unused_port}", "t") as c:
            with pytest.raises(Exception, match="503"):
                await c.purge("tag", "model:ranker")
            out = await c.publish(model_files.v1, "ranker", "1", activate=True)
            assert out["activate"]["announced"] is False
    finally:
        await runner.cleanup()
