"""The DNS benches that docs/benchmarks.md quotes run as shown there, briefly: each
command of the page is run with arguments that make it small (argparse lets the last
value win), against the real gdnsd and dnsperf."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from dnstest import ROOT

SMALL = {
    "bench/dns_bench.py": ["--reps", "1", "--duration", "1"],
    "bench/big_zone_bench.py": ["--reps", "1", "--records", "2000", "--pools", "20",
                                "--load", "4"],
}


def commands() -> list[str]:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    found = re.findall(r"^\.venv/bin/python (bench/(?:dns_bench|big_zone_bench)\.py[^\n#]*)",
                       text, re.M)
    assert len(found) >= 3, found
    return [line.strip() for line in found]


@pytest.fixture(scope="module")
def programs(system_program) -> None:
    for binary, package in (("dnsperf", "dnsperf"), ("gdnsd", "gdnsd"),
                            ("dig", "bind9-dnsutils")):
        system_program(binary, package)


@pytest.mark.parametrize("command", commands())
def test_bench_command_runs(programs, command):
    script, *args = command.split()
    out = subprocess.run([sys.executable, script, *args, *SMALL[script]], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    if script.endswith("dns_bench.py"):
        assert re.search(r"^\| mix\+cookie \| geodns \| [\d,]+ \| [\d,]+ \| \d+ \|$",
                         out.stdout, re.M) or "--no-gdnsd" in args, out.stdout
        assert "half rate" in out.stdout
    else:
        assert "| start to first answer (s) |" in out.stdout, out.stdout
        assert re.search(r"\| queries lost \(all runs\) \| \d+ of [\d,]+ \|", out.stdout)
