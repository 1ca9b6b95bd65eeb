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
    with urllib.request.urlopen(f"{base_url}/health", timeout=2) as resp:
        return json.load(resp)["models"]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


async def predict(site, item: int) -> dict:
    async with EdgeClient(port=site.port) as client:
        reply = await client.predict(site.address, payload("ranker", item))
    assert reply.status == 200
    return reply.body


async def test_a_version_published_to_the_stack_becomes_active_on_the_edges(stack):
    site = stack.topology.edge("london")
    # The edge places the ranker by demand: a request makes it load the current version.
    first = await predict(site, 1)
    wait_for(lambda: "ranker" in edge_models(site.base_url), 15, "london never loaded ranker")
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

    wait_for(lambda: edge_models(site.base_url)["ranker"] == "2", 15,
             "london never activated ranker 2")
    assert old != "2"
    assert (await predict(site, 2))["model_version"] == "2"
