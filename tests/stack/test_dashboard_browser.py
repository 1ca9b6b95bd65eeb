"""The live dashboard in a real browser (Debian's headless Chromium driven by Playwright)
against the running stack: every edge shown with its state, drain and undrain from the
page, a killed edge turning down without a reload; the screenshot goes to the README."""

from __future__ import annotations

import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from cdn.cities import city_network, demo_cities
from cdn.client import resolve
from cdn.simulate import SimConfig, Simulation

from .conftest import ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# The README's screenshot is refreshed on request (GEOCDN_SCREENSHOT=docs/dashboard.png),
# so that running the tests never rewrites a tracked file.
SCREENSHOT_ENV = "GEOCDN_SCREENSHOT"


def marker(page: Page, member: str):
    return page.locator(f'#markers g.edge[data-member="{member}"]')


def row(page: Page, member: str):
    return page.locator(f'#pools tr[data-member="{member}"]')


SECONDS_AGO = re.compile(r"^\d+ s ago$")


def legend_colours(page: Page) -> dict[str, str]:
    """Member -> the colour of its dot in the answers-per-region legend; each dot sits
    on one line with its name (the legend may wrap between members, never inside one)."""
    return page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('#regions .legend .item')].map((item) => {
            const dot = item.querySelector('.dot').getBoundingClientRect();
            const box = item.getBoundingClientRect();
            if (box.height > 2 * dot.height + 4) throw new Error('legend item wraps');
            return [item.dataset.member, getComputedStyle(item.querySelector('.dot'))
                                         .backgroundColor];
        }))""")


def check_readable_labels(page: Page, edges: list[str]) -> None:
    """Every marker's name label renders at 11 px or more at the default window size."""
    sizes = page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('#markers g.edge')].map((g) => {
            const text = g.querySelector('text.name');
            const px = parseFloat(getComputedStyle(text).fontSize) * text.getScreenCTM().a;
            return [g.dataset.member, px];
        }))""")
    assert set(sizes) == set(edges)
    assert all(px >= 11 for px in sizes.values()), sizes


def run_async(coro):
    """Run a coroutine to its end from inside Playwright's sync API (which owns this
    thread's event loop): in a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def answer_for(stack, city: str) -> str:
    res = run_async(resolve(stack.topology.steered_name, stack.config.dns_host_port,
                            ecs=str(city_network(city))))
    return stack.topology.by_address(res.addresses[0]).name


def traffic(stack, seconds: float) -> Simulation:
    """Clients in every city, so that rates and answers on the page are not zero."""
    return Simulation(stack.topology, demo_cities(), stack.config.dns_host_port,
                      SimConfig(requests=None, duration=seconds, concurrency=4))


def test_dashboard_shows_edges_drains_and_sees_a_killed_edge_go_down(
    stack, tmp_path, system_program
):
    chromium = system_program("chromium", "chromium")
    edges = [s.name for s in stack.topology.edges]
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 980},
        )
        try:
            page = browser.new_page()
            page.goto(f"http://{stack.config.http}/")
            expect(page.locator("#markers g.edge")).to_have_count(len(edges))
            states = stack.member_states()
            for name in edges:
                expect(marker(page, name)).to_have_attribute("data-status", states[name])
                expect(row(page, name)).to_have_attribute("data-status", states[name])
            assert set(states.values()) == {"up"}
            assert len(page.locator("#land").get_attribute("d")) > 1000  # the world map

            # Drain london from the page with the admin token; DNS stops answering it.
            page.fill("#token", stack.config.admin_token)
            page.click("#token-form button[type=submit]")
            row(page, "london").locator("button[data-action=drain]").click()
            expect(row(page, "london")).to_have_attribute("data-status", "draining")
            expect(marker(page, "london")).to_have_attribute("data-status", "draining")
            assert answer_for(stack, "london") != "london"
            row(page, "london").locator("button[data-action=undrain]").click()
            expect(row(page, "london")).to_have_attribute("data-status", "up")
            # the row dates the state from the undrain, not from the first probe
            expect(row(page, "london").locator("td.reason")).to_contain_text("override ended")
            expect(row(page, "london").locator("td").nth(2)).to_have_text(SECONDS_AGO)
            assert answer_for(stack, "london") == "london"

            # Kill an edge under load: the page turns it down by itself (no reload).
            background = ThreadPoolExecutor(1)
            load = background.submit(asyncio.run, traffic(stack, 12.0).run())
            page.wait_for_timeout(3000)
            loaded_at = page.evaluate("performance.timeOrigin")
            stack.kill("sydney")
            expect(marker(page, "sydney")).to_have_attribute("data-status", "down",
                                                             timeout=120_000)
            expect(row(page, "sydney")).to_have_attribute("data-status", "down")
            expect(page.locator('#changes li[data-member="sydney"][data-to="down"]')
                   ).to_have_count(1)
            assert page.evaluate("performance.timeOrigin") == loaded_at  # same page
            expect(page.locator("#regions .bar").first).to_be_visible()
            for name in edges:
                if name != "sydney":
                    expect(marker(page, name)).to_have_attribute("data-status", "up")
            page.wait_for_timeout(1500)  # one more poll, so rates show the traffic
            check_readable_labels(page, edges)
            colours = legend_colours(page)
            assert len(colours) >= 2 and len(set(colours.values())) == len(colours)
            for _ in range(2):  # the same colours after a reload, whatever arrives first
                page.reload()
                expect(page.locator("#regions .legend .item")).to_have_count(len(colours))
                assert legend_colours(page) == colours
            shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard.png")
            shot = shot if shot.is_absolute() else ROOT / shot
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            samples = load.result()
            background.shutdown()
            assert sum(s.ok for s in samples) > 0
        finally:
            browser.close()
            stack.restart("sydney")
    deadline = time.monotonic() + 120
    while stack.member_states()["sydney"] != "up":
        assert time.monotonic() < deadline, "sydney did not come back up"
        time.sleep(0.2)
