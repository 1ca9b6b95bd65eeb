"""A real Prometheus (Debian's) scrapes an edge under load, and the queries a Triton
dashboard runs answer: the request rate from ``nv_inference_request_success`` (a counter
without ``_total``, typed as a counter) and a latency quantile from the per-tier
request-duration histogram.

Prometheus runs on loopback with a configuration that scrapes only the edge (no
alerting, no remote write), its data in the test's folder, stopped by PID at the end."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from edgetest import features, spawn_edge

from cdn.processes import stop_process
from cdn.redis_server import free_port

RATE = "rate(nv_inference_request_success[1m])"
P99 = ("histogram_quantile(0.99, sum by (le) "
       "(rate(edge_inference_request_duration_seconds_bucket[1m])))")
COUNT = "nv_inference_request_success"
DEADLINE_S = 90.0


def count_before(times: list[float], moment: float) -> int:
    return sum(1 for t in times if t <= moment)


@pytest.fixture
def prometheus(tmp_path: Path, system_program, models_dir):
    binary = system_program("prometheus", "prometheus")
    edge = spawn_edge(tmp_path, "--models", str(models_dir))
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: edge\n    static_configs:\n"
        f"      - targets: ['{edge.url.removeprefix('http://')}']\n")
    log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([binary, f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    yield edge.url, f"http://127.0.0.1:{port}"
    stop_process(proc)
    stop_process(edge.proc)


async def load(http: aiohttp.ClientSession, url: str, sent: list[float]) -> None:
    """Predictions, forever: a few new inputs (computed) among many repeated ones (hits).
    `sent` gets the time each answer came."""
    i = 0
    while True:
        seed = i if i % 10 == 0 else i % 7
        async with http.post(f"{url}/predict", json={"features": features(seed)}) as r:
            assert r.status == 200
        sent.append(time.monotonic())
        i += 1


async def query(http: aiohttp.ClientSession, base: str, promql: str) -> list[dict]:
    try:
        async with http.get(f"{base}/api/v1/query", params={"query": promql}) as r:
            doc = await r.json()
    except aiohttp.ClientError:
        return []  # not up yet
    return doc["data"]["result"] if doc.get("status") == "success" else []


async def test_prometheus_reads_triton_rate_and_latency_quantile(prometheus):
    edge, base = prometheus
    sent: list[float] = []
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        loader = asyncio.ensure_future(load(http, edge, sent))
        try:
            rate = p99 = None
            while time.monotonic() - started < DEADLINE_S and (rate is None or p99 is None):
                await asyncio.sleep(1.0)
                rates = [r for r in await query(http, base, RATE)
                         if r["metric"]["model"] == "ranker"]  # (embedder's is 0)
                if rates and float(rates[0]["value"][1]) > 0:
                    rate = rates[0]
                quantiles = await query(http, base, P99)
                if quantiles and quantiles[0]["value"][1] not in ("NaN", "0"):
                    p99 = float(quantiles[0]["value"][1])
            now = time.time()
            totals = [r for r in await query(http, base, COUNT)
                      if r["metric"]["model"] == "ranker"]
            total = (totals[0]["value"][0] - now + time.monotonic(),  # its time, monotonic
                     float(totals[0]["value"][1])) if totals else None
            elapsed = time.monotonic() - started
            assert rate is not None, f"no {RATE} within {DEADLINE_S} s"
            assert p99 is not None, f"no {P99} within {DEADLINE_S} s"
            async with http.get(f"{base}/api/v1/metadata",
                                params={"metric": "nv_inference_request_success"}) as r:
                metadata = (await r.json())["data"]["nv_inference_request_success"]
        finally:
            loader.cancel()
    assert rate["metric"]["version"] == "1"
    # plausible: rate() is the increase over its 1-minute window / 60 s, so at most the
    # load's average rate (less while the samples cover only part of the window)
    per_second = float(rate["value"][1])
    assert 0 < per_second <= 1.5 * len(sent) / elapsed, (per_second, len(sent), elapsed)
    # and the counter counts every answer, cache hits included: the last sample holds what
    # was answered before the last scrape (1 s ago, give or take a slow scrape)
    assert total is not None
    assert count_before(sent, total[0] - 5) <= total[1] <= len(sent), (total, len(sent))
    assert 0 < p99 < 5.0, p99  # seconds: local answers on loopback
    assert metadata[0]["type"] == "counter"
