"""In a real browser (Debian's headless Chromium, driven by Playwright): a web page
that loads an edge's beacon.js times the edge and posts a beacon; the dashboard of a
DNS server that follows the figures shows them per region and edge."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright
from redis.asyncio import Redis

from cdn.world import CONGESTED, World
from cdn.world_stack import WorldStack
from latency.store import PREFIX

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


async def test_a_page_with_beacon_js_posts_a_beacon(beacon_edge, system_program) -> None:
    chromium = system_program("chromium", "chromium")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{beacon_edge.url}/latency/object")  # any page of the site
            await page.set_content(
                f'<html><body><script src="{beacon_edge.url}/latency/beacon.js"></script>'
                "</body></html>")
            await page.wait_for_function("window.geocdnBeaconStatus !== undefined",
                                         timeout=20_000)
            status = await page.evaluate("window.geocdnBeaconStatus")
            samples = await page.evaluate("window.geocdnBeacon")
        finally:
            await browser.close()
    assert status == 202, status
    # The page's own edge is always timed; alternates that do not answer are left out.
    assert [s["edge"] for s in samples] == ["tokyo"] and samples[0]["ms"] > 0
    # One beacon is below a figure's minimum sample count: the sample is in the store.
    redis = Redis.from_url(beacon_edge.redis_url)
    try:
        assert await redis.llen(f"{PREFIX}s:127.0.0.0/24|tokyo|beacon") == 1
    finally:
        await redis.aclose()


@pytest.mark.timeout(600)
async def test_the_dashboard_shows_latency_per_region_and_edge(tmp_path, redis_server,
                                                               system_program) -> None:
    chromium = system_program("chromium", "chromium")
    world = World(scale=0.25, anomalies=[CONGESTED])
    world.cities = tuple(c for c in world.cities if c.name in ("Seoul", "Tokyo"))
    async with WorldStack(world, tmp_path, redis_server.url, ttl=2) as stack:
        clients = [stack.client(city, i) for city in ("Seoul", "Tokyo") for i in range(2)]
        for c in clients:
            c.sample_rate, c.alternates = 1.0, 3
        for _ in range(5):
            for c in clients:
                await c.visit()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{stack.http_port}/")
                table = page.locator("#latency-panel table.latency")
                await table.wait_for(timeout=20_000)
                text = await table.inner_text()
            finally:
                await browser.close()
    assert "Seoul" in text and "Tokyo" in text and "127.21.0.0/24" in text, text
    edges = text.splitlines()[0].split("\t")[2:]  # a column per edge measured
    assert "tokyo" in edges and len(edges) >= 2, text  # the edge given, and alternates
