"""Hostile traffic leaves no lasting mark: a short run of bench/dns_fuzz.py (metric
series and RSS back within 10% of the fresh server, no crash, no internal error),
and random query types, which once made a metric series each, add none."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.request

import dns.message
from dnstest import ROOT


def test_short_fuzz_bench(tmp_path, system_program):
    system_program("dnsperf", "dnsperf")
    system_program("dig", "bind9-dnsutils")
    out = tmp_path / "fuzz.json"
    run = subprocess.run([sys.executable, "bench/dns_fuzz.py", "--udp", "20000", "--tcp",
                          "1000", "--dnsperf-seconds", "1", "--check", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert result["udp_sent"] == 20000 and result["tcp_sent"] == 1000
    assert result["alive"] and result["errors"] == 0
    assert result["after"]["series"] <= result["before"]["series"] * 1.1
    assert result["after"]["valid_lost"] == 0


def series(geodns) -> list[str]:
    with urllib.request.urlopen(f"{geodns.http}/metrics", timeout=10) as r:
        return [line for line in r.read().decode().splitlines()
                if line.startswith("geodns_queries_total")]


def test_random_query_types_add_no_series(geodns):
    rng = random.Random(7)
    for qtype in (1, 4242):  # every label set that this test's queries can reach
        geodns.query(dns.message.make_query("www.cdn.example", qtype))
    before = series(geodns)
    for _ in range(300):
        geodns.query(dns.message.make_query("www.cdn.example", rng.randrange(256, 65280)))
    after = series(geodns)
    assert {line.split()[0] for line in after} == {line.split()[0] for line in before}
    assert any('qtype="other"' in line for line in after)
