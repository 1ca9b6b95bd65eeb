"""Model distribution on the local stack: the `edge make-models` and `edge publish` lines
that `cdn up` prints, run as printed, make a new ranker version active on an edge (in
its own registry, not only through its upstream) and its answers carry that version."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.request

from cdn.cli import commands_to_try
from cdn.client import EdgeClient
from cdn.simulate import payload

from .conftest import ROOT


def edge_models(base_url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{base_url}/health", timeout=30) as resp:
        return json.load(resp)["models"]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def cells(table: list[str], edge: str) -> dict[str, str]:
    """One edge's line of the `edge rollout` table, by column (cut where the header's
    names start)."""
    header = table[0]
    names = header.split()
    starts = [header.index(f" {n} ") + 1 if i else 0 for i, n in enumerate(names[:-1])]
    starts.append(header.rindex(" error") + 1)
    line = next(row for row in table if row.startswith(f"{edge} "))
    bounds = [*starts[1:], None]
    return {n: line[a:b].strip() for n, a, b in zip(names, starts, bounds, strict=True)}


async def predict(site, item: int) -> dict:
    async with EdgeClient(port=site.port) as client:
        reply = await client.predict(site.address, payload("ranker", item))
    assert reply.status == 200
    return reply.body


async def test_a_version_published_to_the_stack_becomes_active_on_the_edges(stack):
    site = stack.topology.edge("london")
    # The edge places the ranker by demand: a request makes it load the current version.
    first = await predict(site, 1)
    wait_for(lambda: "ranker" in edge_models(site.base_url), 120, "london never loaded ranker")
    old = edge_models(site.base_url)["ranker"]
    assert first["model_version"] == old

    printed = [cmd for cmd, _ in commands_to_try(stack)]
    make = next(c for c in printed if " make-models " in c)
    publish = next(c for c in printed if " publish " in c)
    for line in (make, publish):
        done = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=60,
                              cwd=ROOT)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    assert "activated" in done.stdout

    wait_for(lambda: edge_models(site.base_url)["ranker"] == "2", 120,
             "london never activated ranker 2")
    assert old != "2"
    assert (await predict(site, 2))["model_version"] == "2"

    # `edge rollout` as printed: one line per edge, london on ranker 2
    rollout = next(c for c in printed if " rollout " in c)
    done = subprocess.run(shlex.split(rollout), capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    assert table[0].split()[:4] == ["edge", "mode", "ready", "lag"]
    assert table[0].split()[-1] == "error" and "ranker" in table[0].split()
    london = cells(table, "london")
    assert (london["ranker"], london["mode"], london["ready"]) == ("2", "stream", "yes")
    assert len(table) <= len(stack.topology.edges) + 3  # a summary, not the raw JSON
    raw = json.loads(subprocess.run(shlex.split(rollout) + ["--json"], capture_output=True,
                                    text=True, timeout=60, cwd=ROOT, check=True).stdout)
    assert raw["edges"]["london"]["models"]["ranker"]["active"] == "2"


async def test_a_restarted_edge_reports_the_version_it_should_serve(stack):
    """After a restart the edge knows (and reports) which version of a model it holds is
    current at the origin, not `desired: null`."""
    site = stack.topology.edge("paris") if any(
        s.name == "paris" for s in stack.topology.edges) else stack.topology.edges[-1]
    async with EdgeClient(port=site.port) as client:  # held on disk across the restart
        assert (await client.predict(site.address, payload("embedder", 2))).status == 200
    wait_for(lambda: "embedder" in edge_models(site.base_url), 120,
             f"{site.name} never loaded the embedder")
    stack.restart(site.name)
    async with EdgeClient(port=site.port) as client:
        reply = await client.predict(site.address, payload("embedder", 3))
    assert reply.status == 200
    wait_for(lambda: "embedder" in edge_models(site.base_url), 120,
             f"{site.name} never loaded the embedder")
    printed = [cmd for cmd, _ in commands_to_try(stack)]
    rollout = next(c for c in printed if " rollout " in c)

    def reported() -> dict:
        done = subprocess.run(shlex.split(rollout) + ["--json"], capture_output=True,
                              text=True, timeout=60, cwd=ROOT, check=True)
        return json.loads(done.stdout)["edges"].get(site.name, {}).get("models", {})

    wait_for(lambda: reported().get("embedder", {}).get("active") is not None, 120,
             "the restarted edge never reported its embedder")
    embedder = reported()["embedder"]
    assert embedder["desired"] == embedder["active"] is not None
