"""A prediction travels the tiers: computed once at the origin, then served from L1, L2,
the shield; single flight; purges; restarts."""

from __future__ import annotations

import asyncio
import re
import shutil

import numpy as np
from edgetest import features, metric, predict

from edge.modelgen import write_ranker


async def flush(http, url: str, *tiers: str) -> dict:
    async with http.post(f"{url}/admin/flush", json={"tiers": list(tiers)}) as r:
        assert r.status == 200
        return await r.json()


async def test_prediction_computed_once_then_l1_l2_and_shield(start_node, http, models_dir,
                                                              tmp_path):
    origin = await start_node(models_dir=models_dir, region="origin")
    shield = await start_node(upstream=origin.url, region="shield")
    edge_cache = tmp_path / "edge-cache"
    edge = await start_node(upstream=shield.url, region="tokyo", cache_dir=edge_cache)

    first = await predict(http, edge.url, 1)
    assert first["tier"] == "upstream/upstream/compute" and first["cached"] is False
    assert first["region"] == "tokyo" and first["model_version"] == "1"
    assert 0.0 < first["prediction"] < 1.0

    again = await predict(http, edge.url, 1)
    assert (again["tier"], again["cached"]) == ("l1", True)
    assert again["prediction"] == first["prediction"]

    await flush(http, edge.url, "l1")
    from_l2 = await predict(http, edge.url, 1)
    assert from_l2["tier"] == "l2" and from_l2["prediction"] == first["prediction"]
    assert (await predict(http, edge.url, 1))["tier"] == "l1"  # promoted

    # Restart with the same cache folder: L2 survived.
    port = edge.config.host_port[1]
    await edge.stop()
    edge = await start_node(upstream=shield.url, port=port, cache_dir=edge_cache)
    assert (await predict(http, edge.url, 1))["tier"] == "l2"

    # A fresh edge (empty caches) is answered by the shield's L1.
    await edge.stop()
    fresh = await start_node(upstream=shield.url, cache_dir=tmp_path / "fresh")
    doc = await predict(http, fresh.url, 1)
    assert doc["tier"] == "upstream/l1" and doc["prediction"] == first["prediction"]

    # The model ran once in the whole network.
    assert await metric(http, origin.url, "nv_inference_count") == 1
    assert await metric(http, shield.url, "nv_inference_count") == 0


async def test_concurrent_misses_share_one_computation(start_node, http, models_dir):
    # The origin holds its batch for 300 ms: all 40 requests arrive while the miss is open.
    origin = await start_node(models_dir=models_dir, max_queue_delay_ms=300)
    edge = await start_node(upstream=origin.url)
    docs = await asyncio.gather(*(predict(http, edge.url, 42) for _ in range(40)))
    assert len({d["prediction"] for d in docs}) == 1
    assert await metric(http, origin.url, "nv_inference_count") == 1
    assert await metric(http, edge.url, 'edge_cache_misses_total{tier="upstream"}') == 1
    waiters = await metric(http, edge.url, "edge_singleflight_waiters_total")
    assert waiters == sum(d["tier"] == "upstream/compute" for d in docs) - 1 >= 30


async def test_purge_by_key_prefix_and_tag(start_node, http, models_dir):
    origin = await start_node(models_dir=models_dir)
    a, b = await predict(http, origin.url, 1), await predict(http, origin.url, 2)
    assert a["tier"] == b["tier"] == "compute"
    info, _ = await origin.node.resolve("ranker")
    key_a = info.cache_key({"features": np.array([features(1)], dtype=np.float32)})

    async def purge(**body) -> dict:
        async with http.post(f"{origin.url}/admin/purge", json=body) as r:
            assert r.status == 200
            return (await r.json())["removed"]

    assert await purge(keys=[key_a]) == {"l1": 1, "l2": 1}
    assert (await predict(http, origin.url, 1))["tier"] == "compute"
    assert (await predict(http, origin.url, 2))["tier"] == "l1"

    assert await purge(tags=[f"digest:{info.key_digest}"]) == {"l1": 2, "l2": 2}
    assert (await predict(http, origin.url, 2))["tier"] == "compute"

    assert await purge(prefixes=["p/ranker/"]) == {"l1": 1, "l2": 1}
    assert (await predict(http, origin.url, 2))["tier"] == "compute"

    async with http.post(f"{origin.url}/admin/purge", json={"tags": "model:ranker"}) as r:
        assert r.status == 400 and "list" in (await r.json())["error"]


async def test_corrupt_l2_entries_are_dropped_counted_and_never_served(
        start_node, http, models_dir, tmp_path):
    """Bytes flipped on disk (same length) in the stored values and in a stored key: the
    node recomputes instead of serving them, and counts them."""
    cache = tmp_path / "rotten"
    node = await start_node(models_dir=models_dir, cache_dir=cache)
    right = {seed: (await predict(http, node.url, seed))["prediction"] for seed in range(6)}
    await node.stop()
    db = cache / "l2" / "l2.sqlite"
    data = bytearray(db.read_bytes())
    values = [m.end() for m in re.finditer(rb'"prediction":\s*0\.', data)]
    keys = [m.end() for m in re.finditer(rb"p/ranker/", data)]
    assert len(values) == len(keys) == 6  # one row per entry, key before value
    for at in values[:4]:  # 0.332 -> 0.932: a plausible, wrong prediction
        data[at] = ord("9") if data[at] != ord("9") else ord("1")
    data[keys[4] + 3] ^= 0x01  # a hex digit of the key becomes another character
    db.write_bytes(bytes(data))

    node = await start_node(models_dir=models_dir, cache_dir=cache)
    answers = {seed: await predict(http, node.url, seed) for seed in range(6)}
    assert {seed: a["prediction"] for seed, a in answers.items()} == right
    assert sorted(a["tier"] for a in answers.values()) == ["compute"] * 5 + ["l2"]
    assert await metric(http, node.url, 'edge_cache_corrupt_entries_total{tier="l2"}') == 5
    assert node.node.cache.l2.stats()["corrupt"] == 5
    await flush(http, node.url, "l1")  # the recomputed entries replaced the bad ones
    again = {seed: await predict(http, node.url, seed) for seed in range(6)}
    assert {seed: a["prediction"] for seed, a in again.items()} == right
    assert {a["tier"] for a in again.values()} == {"l2"}


async def test_l1_bound_holds(start_node, http, models_dir):
    node = await start_node(models_dir=models_dir, l1_bytes=4000)
    for seed in range(40):
        await predict(http, node.url, seed)
    stats = node.node.cache.l1.stats()
    assert stats["bytes"] <= 4000 and 0 < stats["entries"] < 40


async def test_edge_holding_the_model_asks_its_shield_first(start_node, http, models_dir,
                                                            tmp_path):
    """The issue's order, L1 → L2 → upstream → local model, also when the edge holds the
    model (as every edge does once distribution has rolled it out): after a restart that
    lost its caches, the edge is answered by the shield instead of computing again."""
    origin = await start_node(models_dir=models_dir, region="origin")
    shield = await start_node(upstream=origin.url, models_dir=models_dir, region="shield")
    edge = await start_node(upstream=shield.url, models_dir=models_dir,
                            cache_dir=tmp_path / "a")
    assert (await predict(http, edge.url, 1))["tier"] == "upstream/upstream/compute"
    port = edge.config.host_port[1]
    await edge.stop()
    edge = await start_node(upstream=shield.url, models_dir=models_dir, port=port,
                            cache_dir=tmp_path / "b")  # a replaced node: empty L1 and L2
    assert (await predict(http, edge.url, 1))["tier"] == "upstream/l1"
    assert await metric(http, origin.url, "nv_inference_count") == 1
    assert await metric(http, shield.url, "nv_inference_count") == 0
    assert await metric(http, edge.url, "nv_inference_count") == 0

    # The edge asks for the version it serves; one the upstream lacks is computed locally.
    doc = await predict(http, edge.url, 2, version="1")
    assert (doc["tier"], doc["model_version"]) == ("upstream/upstream/compute", "1")
    ahead = tmp_path / "ahead"
    shutil.copytree(models_dir, ahead)
    write_ranker(ahead, version="5", seed=5)
    edge5 = await start_node(upstream=shield.url, models_dir=ahead)
    doc = await predict(http, edge5.url, 2)
    assert (doc["tier"], doc["model_version"]) == ("compute", "5")
    lookups = 'edge_http_requests_total{endpoint="lookup_version",status="200"}'
    assert await metric(http, shield.url, lookups) == 3

    # local-first: the node's own model answers its misses; the upstream is not asked.
    local = await start_node(upstream=shield.url, models_dir=models_dir,
                             miss_order="local-first")
    assert (await predict(http, local.url, 3))["tier"] == "compute"
    assert await metric(http, shield.url, lookups) == 3
