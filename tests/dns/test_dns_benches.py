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


@pytest.mark.parametrize("args", [[], ["{tmp}"]])
def test_geo_anchors_needs_the_harness_folder(tmp_path, args):
    """The harness is not in this repository: without its folder (or given another
    one) the script says what it needs and touches nothing."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept").write_text("x")
    out = subprocess.run(["bash", str(ROOT / "bench" / "geo_anchors.sh"),
                          *(a.format(tmp=tmp_path) for a in args)],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "DEST": str(dest)})
    assert out.returncode == 2
    assert ("usage: bench/geo_anchors.sh HARNESS" in out.stderr if not args else
            f"{tmp_path} is not the GeoDNS benchmark harness" in out.stderr), out.stderr
    assert (dest / "kept").exists()
