"""Explanations are the answer: `/admin/explain`, the `_explain.NAME` TXT record and
`geodns explain` say what DNS answers, for many clients, in several health and load
states, for cached and uncached decisions, and inside the settle window."""

from __future__ import annotations

import json
import subprocess
import sys

import dns.rcode
import pytest
import yaml

from .conftest import ROOT
from .server import ecs_query, start
from .steering_servers import STATES, Fleet, answer_of, generation

CLIENTS = ([f"198.18.{n}.0/24" for n in range(1, 14)] + [f"2001:db8:{n:x}::/56" for n in (1, 6, 9)]
           + ["10.1.2.0/24", "100.64.3.0/24", "fd00:1::/56", "203.0.113.0/24",
              "198.51.100.0/24", None])
NAMES = ["edge.nets.example", "edge.plain.example", "fenced.plain.example"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("explain"))
    f.start("--explain-from", "127.0.0.0/24")
    yield f
    f.close()


def dns_addresses(server, name: str, ecs: str | None) -> list[str]:
    r = server.query(ecs_query(name, "A", ecs))
    rcode, records = answer_of(r)
    return [rcode] + [rec.rsplit(" ", 1)[1] for rec in records]


def explained(e: dict) -> list[str]:
    if e["settling"]:
        return ["SERVFAIL"]
    return ["NOERROR"] + sorted(e["addresses"])


def explain_cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "geodns.cli", "explain", *args, "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return json.loads(out)


def txt_pick(server, name: str, ecs: str | None) -> str:
    r = server.query(ecs_query(f"_explain.{name}", "TXT", ecs), tcp=True)
    assert dns.rcode.to_text(r.rcode()) == "NOERROR"
    lines = [s.decode() for rs in r.answer for rd in rs for s in rd.strings]
    return next(line for line in lines if line.startswith("pick:"))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("state", STATES, ids=[s.name for s in STATES])
def test_explain_says_what_dns_answers(fleet, state):
    server = fleet.servers[0]
    fleet.set_state(state)
    server.http("POST", "/admin/reload")  # empty decision caches: see them fill
    steady = 0  # clients checked without a health generation change (which empties the
    # decision cache: a probe that is slow on a loaded machine can cause one)
    for name in NAMES:
        for i, ecs in enumerate(CLIENTS):
            query = f"/admin/explain?name={name}&client=127.0.0.1" + (f"&ecs={ecs}" if ecs else "")
            before = generation(server)
            first = server.http("GET", query)
            answer = dns_addresses(server, name, ecs)
            assert explained(first) == answer, (state.name, name, ecs)
            again = server.http("GET", query)
            assert explained(again) == answer
            # The TXT record takes the same path; its pick line names the same addresses.
            pick = txt_pick(server, name, ecs)
            assert ", ".join(answer[1:]) in pick or (answer == ["NOERROR"] and "NODATA" in pick)
            if generation(server) == before:
                steady += 1
                assert first["cached"] is False  # a new client: decided now, and kept
                assert again["cached"] is True
                assert pick.endswith("(from the decision cache)")
            if i % 10:  # the commands start a Python each: every tenth client
                continue
            # geodns explain --server prints the server's explanation.
            args = [name, "--client", "127.0.0.1",
                    "--server", f"http://127.0.0.1:{server.http_port}"]
            cli = explain_cli(*args, *(["--ecs", ecs] if ecs else []))
            assert explained(cli) == answer
            if state.name == "idle":  # every member up and equally loaded: what the
                # offline command assumes, so it must agree with the live answer too
                offline = explain_cli(name, "--client", "127.0.0.1", "--zones", str(fleet.zones),
                                      *(["--ecs", ecs] if ecs else []))
                assert explained(offline) == answer, (name, ecs)
    assert steady >= len(NAMES) * len(CLIENTS) // 2


@pytest.mark.timeout(600)
def test_explain_in_the_settle_window_says_servfail(tmp_path):
    # Members that never get a verdict (every probe fails, but fall is 1000) and a
    # settle window of 10 minutes: the pool is not answered yet.
    zones = tmp_path / "zones"
    zones.mkdir()
    members = [{"name": "a", "ipv4": "192.0.2.1", "lat": 0.0, "lon": 0.0,
                "health_url": "http://127.0.0.1:9/health"}]
    doc = {"zone": "settle.example", "soa": {"mname": "ns1", "rname": "hostmaster", "serial": 1},
           "records": {"@": {"NS": ["ns1"]}, "ns1": {"A": "127.0.0.1"},
                       "edge": {"pool": "p"}},
           "pools": {"p": {"ttl": 30, "members": members,
                           "health": {"fall": 1000, "rise": 1000, "settle": 600}}}}
    (zones / "settle.example.yaml").write_text(yaml.safe_dump(doc))
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides: []\n")
    server = start(zones, tmp_path, "--overrides", str(overrides),
                   "--explain-from", "127.0.0.0/24")
    try:
        for ecs in ("198.18.1.0/24", None):
            assert dns_addresses(server, "edge.settle.example", ecs) == ["SERVFAIL"]
            query = "/admin/explain?name=edge.settle.example&client=127.0.0.1"
            e = server.http("GET", query + (f"&ecs={ecs}" if ecs else ""))
            assert e["settling"] is True and e["cached"] is False  # never cached
            assert "SERVFAIL" in txt_pick(server, "edge.settle.example", ecs)
    finally:
        server.stop()
