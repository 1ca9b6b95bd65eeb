"""`geodns explain` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT
from .server import example_zones


def explain(tmp_path, geodb, *args: str) -> subprocess.CompletedProcess:
    zones = example_zones(tmp_path)
    cmd = [sys.executable, "-m", "geodns.cli", "explain", *args, "--zones", str(zones),
           "--geoip", str(geodb.path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_explain_a_tokyo_client(tmp_path, geodb):
    r = explain(tmp_path, geodb, "edge.cdn.example", "--ecs", "126.0.1.0/24")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "geoip (ecs) 126.0.0.0/16: Tokyo, JP, AS (35.6895, 139.6917, accuracy 20 km)" in out
    assert "tokyo             0" in out and "saopaulo     18,534" in out
    assert "first_n -> tokyo" in out
    assert "pick: tokyo -> 127.0.1.1" in out
    assert "decided for 126.0.0.0/16; ECS scope /16; TTL 30" in out


def test_explain_json_of_a_nets_client(tmp_path, geodb):
    r = explain(tmp_path, geodb, "edge.cdn.example", "--client", "127.0.6.1", "--json")
    e = json.loads(r.stdout)
    assert e["signal"] == "nets 127.0.6.0/24 (source)" and e["pick"] == ["saopaulo"]


def test_explain_refuses_a_static_name_and_bad_input(tmp_path, geodb):
    r = explain(tmp_path, geodb, "www.cdn.example")
    assert r.returncode == 2 and "not bound to a pool" in r.stderr
    r = explain(tmp_path, geodb, "edge.cdn.example", "--ecs", "banana")
    assert r.returncode == 2 and "not a prefix" in r.stderr
