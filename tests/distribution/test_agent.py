"""Edge rollout agents against a real origin, a real Redis stream and the edge's registry."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from disttest import until

from edge.distribution.events import STREAM_KEY


def metric(edge, name: str, **labels: str) -> float:
    return edge.agent.metrics.registry.get_sample_value(name, labels) or 0.0


def active(edge) -> str | None:
    mv = edge.registry.get("ranker")
    return mv.version if mv else None


async def test_activate_delta_rollback_and_stage(origin, edges, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("a-e1")
        await until(lambda: e1.agent.ready and active(e1) == "1")
        await c.publish(model_files.last_layer, "ranker", "2", activate=True)
        await until(lambda: active(e1) == "2")
        # version 2 came as a delta against version 1, far smaller than the file
        delta_bytes = metric(e1, "dist_transfer_bytes_total", variant="delta")
        assert 0 < delta_bytes < model_files.last_layer.stat().st_size / 4
        assert e1.registry.get("ranker", "1") is not None  # previous stays loaded
        await c.rollback("ranker")
        await until(lambda: active(e1) == "1")
        # two-phase: stage first (loaded, not serving), then activate
        await c.publish(model_files.finetune, "ranker", "3", stage=True)
        await until(lambda: "3" in e1.registry.versions("ranker"))
        assert active(e1) == "1"
        await c.activate("ranker", "3")
        await until(lambda: active(e1) == "3")
        state = (await c.rollout())["edges"]["a-e1"]
    assert state["models"]["ranker"]["active"] in ("1", "3")
    assert state["ready"] and state["lag"] == 0


async def test_purges_reach_both_tiers(origin, edges, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("p-e1")
        e1.l2.start()
        await until(lambda: e1.agent.ready)
        far = time.time() + 600
        for key, tags in (("pred:a", ("model:ranker",)), ("pred:b", ("model:other",)),
                          ("art:x", ()), ("keep", ())):
            await e1.l1.set(key, b"v", far, tags)
            e1.l2.put_later(key, b"v", far, tags)
        await e1.l2.drain()
        await c.purge("tag", "model:ranker")
        await c.purge("prefix", "art:")
        await c.purge("key", "pred:b")
        await until(lambda: e1.agent.position.seq >= 4)
    for key in ("pred:a", "pred:b", "art:x"):
        assert await e1.l1.get(key) is None and e1.l2.get(key) is None, key
    assert await e1.l1.get("keep") is not None and e1.l2.get("keep") is not None


async def test_corrupt_delta_falls_back_to_a_verified_variant(origin, edges, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("c-e1")
        await until(lambda: active(e1) == "1")
        out = await c.publish(model_files.last_layer, "ranker", "2")
        delta = out["manifest"]["files"]["model"]["deltas"][0]["digest"]
        flip_byte(origin.store.blobs.path(delta))
        await c.activate("ranker", "2")
        await until(lambda: active(e1) == "2")
    assert metric(e1, "dist_transfer_failures_total", variant="delta") == 1


async def test_corrupt_transfer_keeps_the_old_version_serving(origin, edges, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("x-e1")
        await until(lambda: active(e1) == "1")
        out = await c.publish(model_files.last_layer, "ranker", "2")
        for digest in origin.store.manifest("ranker", "2").files["model"].blobs():
            flip_byte(origin.store.blobs.path(digest))
        await c.activate("ranker", "2")
        await until(lambda: e1.agent.snapshot()["models"]["ranker"]["error"] is not None)
        assert out["created"]
        deadline = time.monotonic() + 60
        while True:  # the report that carries the error follows the failure
            state = (await c.rollout())["edges"]["x-e1"]
            if state["models"]["ranker"]["error"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert active(e1) == "1" and e1.registry.versions("ranker") == ["1"]
    assert "verified" in state["models"]["ranker"]["error"]
    assert metric(e1, "dist_rollout_failures_total") >= 1
    # and version 1 still answers
    mv = e1.registry.get("ranker")
    out = await mv.infer({"features": np.ones((2, 32), np.float32)})
    assert out[0].shape == (2, 1)


def flip_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


async def test_stopped_edge_catches_up_before_ready(origin, edges, model_files, tmp_path):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("s-e1")
        e1.l2.start()
        await until(lambda: e1.agent.ready and active(e1) == "1")
        e1.l2.put_later("pred:1", b"v", time.time() + 600, ("model:ranker",))
        await e1.l2.drain()
        await e1.stop()
        await e1.l2.close()
        await c.purge("tag", "model:ranker")
        await c.publish(model_files.last_layer, "ranker", "2", activate=True)
        e2 = await edges.start("s-e1")  # same edge id, same state folder
        assert not e2.agent.ready
        ready_seen = []

        def check() -> bool:
            if e2.agent.ready:
                ready_seen.append((active(e2), e2.l2.get("pred:1")))
            return bool(ready_seen)

        await until(check, interval=0.001)
    version, entry = ready_seen[0]
    assert version == "2" and entry is None
    assert e2.agent.resyncs == 0  # resumed from its saved position, no full resync


async def test_trimmed_history_forces_a_full_resync(origin, edges, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("t-e1")
        e1.l2.start()
        await until(lambda: e1.agent.ready and active(e1) == "1")
        await e1.stop()
        e1.l2.put_later("pred:old", b"v", time.time() + 600, ())
        await e1.l2.drain()
        await c.purge("key", "pred:old")
        await c.publish(model_files.last_layer, "ranker", "2", activate=True)
        await c.purge("key", "unrelated")
        await origin.redis.xtrim(STREAM_KEY, maxlen=1, approximate=False)
        e2 = await edges.start("t-e1")
        await until(lambda: e2.agent.ready)
    assert e2.agent.resyncs == 1
    assert active(e2) == "2" and e2.l2.get("pred:old") is None


async def test_edge_without_redis_polls_the_origin(origin, edges, model_files):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("poll-e1", stream=False, poll_interval_s=0.2)
        await until(lambda: e1.agent.ready and active(e1) == "1")
        await c.publish(model_files.last_layer, "ranker", "2", activate=True)
        await until(lambda: active(e1) == "2")
        await e1.agent.report()  # without Redis the state is POSTed to the origin
        state = (await c.rollout())["edges"]["poll-e1"]
    assert state["mode"] == "poll" and state["models"]["ranker"]["active"] == "2"


async def test_cold_models_load_lazily_and_are_evicted_when_idle(origin, edges, model_files,
                                                                caplog):
    from edge.distribution.placement import PlacementPolicy

    caplog.set_level(logging.INFO, "edge.distribution.agent")

    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("l-e1", pinned=(), report_interval_s=0.1)
        e1.agent.demand.policy = PlacementPolicy(threshold=1000, idle_evict_s=0.5)
        await until(lambda: e1.agent.ready)
        await c.publish(model_files.last_layer, "ranker", "2", activate=True)
        await until(lambda: e1.agent.position.seq >= 2)
        assert active(e1) is None  # nobody asked for it here: not fetched
        e1.agent.record_request("ranker")  # first request: forwarded, load starts
        # Loaded (it may be idle for the 0.5 s again before this process looks: the log
        # says it was evicted, and only a loaded model is) ...
        await until(lambda: "evicting idle model ranker" in caplog.text)
        await until(lambda: active(e1) is None)  # ... and idle: evicted
    assert e1.agent.snapshot()["models"]["ranker"]["desired"] == "2"


async def test_activations_still_arrive_while_redis_is_down(origin, edges, model_files,
                                                           redis_server):
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("r-e1", poll_interval_s=0.2)
        await until(lambda: e1.agent.ready and active(e1) == "1")
        redis_server.stop()
        out = await c.publish(model_files.last_layer, "ranker", "2", activate=True)
        assert out["activate"]["announced"] is False
        await until(lambda: active(e1) == "2")
    assert not e1.agent.connected and e1.agent.ready


async def test_redis_restart_is_no_gap_and_keeps_the_caches(origin, edges, model_files,
                                                            redis_server):
    """Redis restarted without persistence: the stream and its counter are gone, but the
    origin numbers on from its last entry, so an edge that had applied everything sees
    no gap: no resync, no flush of its L2, and later entries still arrive."""
    async with origin.client() as c:
        await c.publish(model_files.v1, "ranker", "1", activate=True)
        e1 = await edges.start("r-e1")
        e1.l2.start()
        await until(lambda: e1.agent.ready and active(e1) == "1")
        for key in ("pred:keep", "pred:purged"):
            e1.l2.put_later(key, b"v", time.time() + 600, ("model:ranker",))
        await e1.l2.drain()
        await c.purge("key", "unrelated")
        await until(lambda: e1.agent.position is not None and e1.agent.position.seq == 2)
        resyncs = e1.agent.resyncs

        redis_server.stop()
        await until(lambda: not e1.agent.connected)
        redis_server.start()  # same port, empty
        out = await c.purge("key", "pred:purged")
        assert out["event"]["seq"] == 3, out  # numbering went on
        await until(lambda: e1.l2.get("pred:purged") is None)
    assert e1.agent.resyncs == resyncs
    assert e1.l2.get("pred:keep") is not None
    assert e1.agent.connected and e1.agent.problem is None
