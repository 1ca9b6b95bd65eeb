"""A failing tier never fails a request: Redis lost, upstream lost (stale within grace,
then 503), and model version changes never answer from the old version's entries."""

from __future__ import annotations

import asyncio
import shutil
import time

import redis.asyncio as aioredis
from edgetest import features, metric, predict

from edge.modelgen import write_ranker


async def test_redis_l1_shared_then_lost_mid_test(start_node, http, models_dir, redis_server):
    common = {"models_dir": models_dir, "l1": "redis", "redis_url": redis_server.url}
    a = await start_node(**common)
    b = await start_node(**common)
    first = await predict(http, a.url, 7)
    assert first["tier"] == "compute"
    assert (await predict(http, a.url, 7))["tier"] == "l1"
    # The other worker of the site shares the Redis L1.
    assert (await predict(http, b.url, 7))["tier"] == "l1"
    r = aioredis.Redis.from_url(redis_server.url)
    keys = await r.keys("edge:p/ranker/*")
    assert len(keys) == 1
    assert await r.smembers("edge:tag:model:ranker") == {keys[0]}
    await r.aclose()

    redis_server.stop()
    doc = await predict(http, a.url, 7)
    assert doc["tier"] == "l2" and doc["prediction"] == first["prediction"]
    assert (await predict(http, a.url, 8))["tier"] == "compute"
    assert (await predict(http, b.url, 9))["tier"] == "compute"
    async with http.get(f"{a.url}/health") as resp:
        health = await resp.json()
    assert health["status"] == "degraded"
    assert health["l1"]["kind"] == "redis" and health["l1"]["ok"] is False
    assert await metric(http, a.url, 'edge_cache_errors_total{tier="l1"}') >= 1


async def test_upstream_down_serves_stale_within_grace_then_503(start_node, http, models_dir):
    """With the upstream gone, a cached answer comes from L1 while fresh, then stale
    until its grace is over, then 503. Each answer is checked against the entry's age
    as far as this side can know it (it was stored between sending the first request
    and its answer; the edge looked between a request's sending and its answer), so a
    slow machine moves the answers in time but never changes what each must be."""
    ttl, grace = 1.0, 3.0
    origin = await start_node(models_dir=models_dir)
    edge = await start_node(upstream=origin.url, l1_ttl_s=ttl, l2_ttl_s=ttl,
                            stale_grace_s=grace, catalog_ttl_s=1.0)
    asked = time.monotonic()
    first = await predict(http, edge.url, 3)
    stored = (asked, time.monotonic())
    assert first["tier"] == "upstream/compute"
    await origin.stop()
    seen: list[tuple[float, float, str | int]] = []  # (sent, answered, tier or status)
    deadline = time.monotonic() + 120  # bounds a hang only
    while not seen or seen[-1][2] != 503:
        assert time.monotonic() < deadline, seen
        sent = time.monotonic()
        async with http.post(f"{edge.url}/predict", json={"features": features(3)}) as r:
            doc = await r.json()
            assert r.status in (200, 503), doc
            if r.status == 200:
                assert doc["prediction"] == first["prediction"]
            else:
                assert "error" in doc
        seen.append((sent, time.monotonic(), doc["tier"] if r.status == 200 else 503))
        await asyncio.sleep(0.02)
    stage = {"l1": 0, "l2": 0, "stale": 1, 503: 2}
    tiers = [tier for *_, tier in seen]
    assert [stage[t] for t in tiers] == sorted(stage[t] for t in tiers), tiers
    assert "stale" in tiers, seen
    for sent, answered, tier in seen:
        youngest, oldest = sent - stored[1], answered - stored[0]  # its age at the look
        if tier == "l1":
            assert youngest < ttl, (tier, youngest)
        elif tier == "stale":
            assert oldest >= ttl and youngest < ttl + grace, (tier, youngest, oldest)
        elif tier == 503:
            assert oldest >= ttl + grace, (tier, oldest)
    async with http.post(f"{edge.url}/predict", json={"features": features(4)}) as r:
        assert r.status == 503  # never cached, and the upstream is gone
        assert "unreachable" in (await r.json())["error"]
    async with http.get(f"{edge.url}/health") as r:
        assert (await r.json())["status"] == "degraded"
    assert await metric(http, edge.url, "edge_stale_served_total") == tiers.count("stale")


async def health_status(http, url: str) -> str:
    async with http.get(f"{url}/health") as r:
        return (await r.json())["status"]


async def test_edge_leaves_degraded_once_the_upstream_is_back(start_node, http, models_dir):
    """Only cache hits after the upstream returns: no request tells the edge, yet it
    reports ok again (it probes the upstream while it is marked down)."""
    origin = await start_node(models_dir=models_dir)
    port = origin.config.host_port[1]
    edge = await start_node(upstream=origin.url)
    await predict(http, edge.url, 1)
    await origin.stop()
    async with http.post(f"{edge.url}/predict", json={"features": features(2)}) as r:
        assert r.status == 503
    assert await health_status(http, edge.url) == "degraded"
    await start_node(models_dir=models_dir, port=port)
    deadline = time.monotonic() + 30
    while await health_status(http, edge.url) != "ok":
        assert (await predict(http, edge.url, 1))["tier"] == "l1"  # hits only
        assert time.monotonic() < deadline, "still degraded after the upstream came back"
        await asyncio.sleep(0.1)


async def test_edge_with_the_model_computes_when_upstream_is_down(start_node, http, models_dir):
    origin = await start_node(models_dir=models_dir)
    edge = await start_node(upstream=origin.url, models_dir=models_dir)
    await origin.stop()
    assert (await predict(http, edge.url, 5))["tier"] == "compute"


async def test_new_version_never_served_from_old_entries(start_node, http, models_dir,
                                                         tmp_path):
    store = tmp_path / "models"
    shutil.copytree(models_dir, store)
    origin = await start_node(models_dir=store)
    edge = await start_node(upstream=origin.url, catalog_ttl_s=0.2)
    v1 = await predict(http, origin.url, 11)
    assert (await predict(http, edge.url, 11))["tier"] == "upstream/l1"

    path = write_ranker(store, version="2", seed=99)
    registry = origin.node.registry
    await asyncio.to_thread(registry.stage, "ranker", "2", path)
    registry.activate("ranker", "2")

    v2 = await predict(http, origin.url, 11)
    assert (v2["tier"], v2["model_version"]) == ("compute", "2")
    assert v2["prediction"] != v1["prediction"]
    await asyncio.sleep(0.25)  # the edge trusts the version it learned for catalog_ttl_s
    at_edge = await predict(http, edge.url, 11)
    assert (at_edge["model_version"], at_edge["prediction"]) == ("2", v2["prediction"])
    assert at_edge["tier"] == "upstream/l1"

    # Rollback: version 1's entries are still keyed by its digest.
    registry.rollback("ranker")
    back = await predict(http, origin.url, 11)
    assert (back["tier"], back["model_version"], back["prediction"]) == \
        ("l1", "1", v1["prediction"])
    # An explicit version is served as asked.
    pinned = await predict(http, origin.url, 11, version="2")
    assert (pinned["model_version"], pinned["prediction"]) == ("2", v2["prediction"])
    # Staging the active version again and activating it swaps in the new session.
    old = registry.get("ranker")
    await asyncio.to_thread(registry.stage, "ranker", "1", store / "ranker/1/model.onnx")
    assert registry.activate("ranker", "1") is not old and registry.get("ranker").version == "1"


async def test_staging_a_corrupt_model_keeps_the_old_one(start_node, http, models_dir,
                                                         tmp_path):
    from edge.registry import DigestMismatch, ModelError

    origin = await start_node(models_dir=models_dir)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    registry = origin.node.registry
    for call, error in ((lambda: registry.stage("ranker", "9", bad), ModelError),
                        (lambda: registry.stage("ranker", "9", models_dir / "ranker/1/model.onnx",
                                                expected_sha256="0" * 64), DigestMismatch)):
        try:
            call()
        except error as e:
            assert "ranker 9" in str(e)
        else:
            raise AssertionError("staging should fail")
    assert (await predict(http, origin.url, 1))["model_version"] == "1"


async def test_purge_while_redis_is_down_is_a_clear_503(start_node, http, models_dir,
                                                       redis_server):
    node = await start_node(models_dir=models_dir, l1="redis", redis_url=redis_server.url)
    await predict(http, node.url, 1)
    redis_server.stop()
    async with http.post(f"{node.url}/admin/purge", json={"tags": ["model:ranker"]}) as r:
        assert r.status == 503 and "redis" in (await r.json())["error"]
    assert (await predict(http, node.url, 1))["tier"] == "l2"


async def test_idle_models_unload_and_come_back_on_demand(start_node, http, models_dir):
    node = await start_node(models_dir=models_dir)
    first = await predict(http, node.url, 1)
    assert sorted(node.node.registry.unload_idle(0)) == ["embedder", "ranker"]
    async with http.get(f"{node.url}/health") as r:
        assert (await r.json())["models"] == {}
    doc = await predict(http, node.url, 2)
    assert doc["tier"] == "compute" and doc["model_version"] == "1"
    assert (await predict(http, node.url, 1))["prediction"] == first["prediction"]
    async with http.post(f"{node.url}/predict",
                         json={"features": [0.0] * 32, "version": "7"}) as r:
        assert r.status == 404
    assert node.node.registry.versions("ranker") == ["1"]


async def test_a_batch_never_mixes_versions_when_the_upstream_switches(start_node, http,
                                                                       models_dir, tmp_path):
    """An edge without the model answers with the version it resolved (for catalog_ttl_s)
    even after the origin switched: its misses ask the upstream for that version, so a
    batch of old hits and new misses is one version."""
    store = tmp_path / "models"
    shutil.copytree(models_dir, store)
    origin = await start_node(models_dir=store)
    edge = await start_node(upstream=origin.url, catalog_ttl_s=60)
    assert (await predict(http, edge.url, 1))["model_version"] == "1"
    registry = origin.node.registry
    await asyncio.to_thread(registry.stage, "ranker", "2",
                            write_ranker(store, version="2", seed=99))
    registry.activate("ranker", "2")
    async with http.post(f"{edge.url}/batch_predict",
                         json={"features": [features(1), features(2)]}) as r:
        doc = await r.json()
    assert doc["tiers"] == ["l1", "upstream/compute"] and doc["model_version"] == "1"
    async with http.post(f"{origin.url}/batch_predict", json={"features": [features(2)]}) as r:
        assert (await r.json())["tiers"] == ["compute"]  # v2 had not computed it
    v1_alone = await predict(http, origin.url, 2, version="1")
    assert doc["predictions"][1] == v1_alone["prediction"]
