"""/health is real (load from busy time and requests in flight, hit rate, draining),
/metrics has the Triton-style series, and micro-batching joins concurrent requests."""

from __future__ import annotations

import asyncio

from edgetest import metric, predict


async def health(http, url: str) -> dict:
    """The health document; HTTP 200 while ok or degraded, 503 otherwise."""
    async with http.get(f"{url}/health") as r:
        doc = await r.json()
        assert r.status == (200 if doc["status"] in ("ok", "degraded") else 503), doc
        return doc


async def test_health_document_load_and_hit_rate(start_node, http, models_dir):
    node = await start_node(models_dir=models_dir, capacity=4, max_batch=64,
                            max_queue_delay_ms=3000, region="paris", location="48.85,2.35")
    idle = await health(http, node.url)
    assert idle["status"] == "ok" and idle["models"] == {"embedder": "1", "ranker": "1"}
    assert idle["region"] == "paris" and idle["location"] == [48.85, 2.35]
    assert idle["load"] <= 0.25 and idle["hit_rate"] == 0.0 and idle["role"] == "origin"

    # Six requests wait for their batch (3 s): they are in flight, and the load (busy
    # time and in flight over capacity, averaged over the last seconds) rises.
    pending = [asyncio.ensure_future(predict(http, node.url, s)) for s in range(6)]
    while (busy := await health(http, node.url))["inflight"] < 6:
        assert not all(p.done() for p in pending), "the six were never in flight at once"
        await asyncio.sleep(0.02)
    assert busy["load"] > idle["load"]
    await asyncio.gather(*pending)
    for s in range(6):
        await predict(http, node.url, s)
    after = await health(http, node.url)
    assert after["status"] == "ok"
    assert after["hit_rate"] == 0.5
    assert after["l1"]["entries"] == 6 and after["l2"]["kind"] == "disk"


async def test_drain_and_admin_token(start_node, http, models_dir):
    node = await start_node(models_dir=models_dir, admin_token="s3cret")
    async with http.post(f"{node.url}/admin/drain") as r:
        assert r.status == 401 and "Bearer" in (await r.json())["error"]
    auth = {"Authorization": "Bearer s3cret"}
    async with http.post(f"{node.url}/admin/drain", data="{}",  # a form a page could post
                         headers={**auth, "Content-Type": "text/plain"}) as r:
        assert r.status == 415
    cross_site = {**auth, "Origin": "http://x.test"}
    async with http.post(f"{node.url}/admin/drain", headers=cross_site) as r:
        assert r.status == 403
    assert (await health(http, node.url))["status"] == "ok"
    async with http.post(f"{node.url}/admin/drain", headers=auth) as r:
        assert r.status == 200 and (await r.json()) == {"draining": True}
    assert (await health(http, node.url))["status"] == "draining"
    assert (await predict(http, node.url, 1))["tier"] == "compute"  # still serving
    async with http.get(f"{node.url}/v2/health/ready") as r:
        assert r.status == 503
    async with http.post(f"{node.url}/admin/drain", headers=auth, json={"draining": False}) as r:
        assert r.status == 200
    assert (await health(http, node.url))["status"] == "ok"


async def test_micro_batching_joins_concurrent_requests(start_node, http, models_dir):
    batched = await start_node(models_dir=models_dir, max_batch=64, max_queue_delay_ms=200)
    single = await start_node(models_dir=models_dir, max_batch=1)
    for node in (batched, single):
        docs = await asyncio.gather(*(predict(http, node.url, s) for s in range(32)))
        assert all(d["tier"] == "compute" for d in docs)
    assert await metric(http, batched.url, "nv_inference_count") == 32
    assert await metric(http, batched.url, "nv_inference_exec_count") <= 8
    assert await metric(http, single.url, "nv_inference_exec_count") == 32
    assert await metric(http, single.url, 'edge_inference_batch_size_bucket{le="1.0"}') == 32
    # Same answers either way.
    a = await predict(http, batched.url, 5)
    b = await predict(http, single.url, 5)
    assert a["prediction"] == b["prediction"]


async def test_metrics_series(start_node, http, models_dir):
    node = await start_node(models_dir=models_dir)
    await predict(http, node.url, 1)
    await predict(http, node.url, 1)
    async with http.post(f"{node.url}/predict", data=b"x") as r:
        assert r.status == 400  # not JSON: no model to count it for
    async with http.post(f"{node.url}/predict", json={"features": [1.0]}) as r:
        assert r.status == 400  # a failed request of the ranker
    async with http.get(f"{node.url}/metrics") as r:
        text = await r.text()
    for line in ('# TYPE nv_inference_request_success counter',
                 'nv_cache_num_hits_per_model{model="ranker",version="1"} 1.0',
                 'nv_cache_num_misses_per_model{model="ranker",version="1"} 1.0',
                 'nv_inference_request_success{model="ranker",version="1"} 2.0',
                 'nv_inference_request_failure{model="ranker",version="1"} 1.0',
                 'nv_inference_count{model="ranker",version="1"} 1.0',
                 'nv_inference_exec_count{model="ranker",version="1"} 1.0',
                 'edge_inference_request_duration_seconds_count{model="ranker",tier="l1"} 1.0',
                 'edge_inference_request_duration_seconds_count{model="ranker",tier="compute"} 1.0',
                 'edge_cache_hits_total{tier="l1"} 1.0',
                 'edge_http_requests_total{endpoint="predict",status="200"} 2.0',
                 'edge_http_requests_total{endpoint="predict",status="400"} 2.0'):
        assert line in text, line
    assert "_total" not in "".join(line for line in text.splitlines() if line.startswith("nv_"))
    assert "nv_inference_queue_duration_us{" in text
    assert "nv_inference_request_duration_us{" in text
    assert "edge_inference_queue_delay_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text


async def test_a_lone_client_does_not_wait_for_a_batch(start_node, http, models_dir):
    """With a 1 s queue delay, one client asking one at a time waits for company only on
    its first request: five misses queue for about 1 s in all, not 5 s."""
    node = await start_node(models_dir=models_dir, max_batch=64, max_queue_delay_ms=1000)
    for seed in range(5):
        assert (await predict(http, node.url, 100 + seed))["tier"] == "compute"
    queued_us = await metric(http, node.url, "nv_inference_queue_duration_us")
    assert 0.9e6 < queued_us < 2e6, queued_us
