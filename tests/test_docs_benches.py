"""Every bench command the pages show that no other test runs, run as the page shows it
and made small by options appended after it (argparse lets the last value win), on the
real servers and tools it drives; it must finish and print its table. (tests/dns/
test_dns_benches.py, tests/edge/test_edge_docs.py, tests/geo/test_docs_steering.py and
tests/latency/test_docs.py run the others the same way.) The figures themselves are for
the pages, not asserted here: this machine's load decides them."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from doc_commands import PAGES, ROOT, commands

# bench script -> the options that make its run small, and lines its output must have
SMALL = {
    "bench/cache_policy.py": ["--objects", "2000", "--requests", "20000", "--seeds", "1"],
    "bench/health_failover.py": ["--runs", "1"],
    "bench/dist_sizes.py": ["--edges", "2", "--purges", "5", "--rounds", "1"],
    "bench/steering_loop.py": ["--ttl", "2", "--minutes", "0.5"],
    "bench/health_false_downs.py": ["--minutes", "0.25", "--stress", "0"],
    "bench/edge_bench.py": ["--seconds", "1", "--runs", "1", "--connections", "4"],
    "bench/oip_peers.py": ["--runs", "1", "--seconds", "1", "--concurrency", "1"],
    "bench/dns_fuzz.py": ["--udp", "2000", "--tcp", "100", "--rounds", "1",
                          "--dnsperf-seconds", "1"],
}
PRINTS = {
    "bench/cache_policy.py": [r"^alpha +cache +LRU +S3-FIFO +Belady", r"^  1\.1 +10\.0% "],
    "bench/health_failover.py": [r"^geodns \+ healthcheck, refused +[\d.]+s +[\d.]+s",
                                 r"^geodns \+ healthcheck, hung +[\d.]+s +[\d.]+s",
                                 r"^flapping member \(fails 1 probe in 3\): \d+ answers"],
    "bench/dist_sizes.py": [r"^  origin admin API -> Redis stream -> applied to L1\+L2 on all "
                            r"edges: p50 [\d.]+ ms", r"^Rollback on all 2 edges"],
    "bench/steering_loop.py": [r"^before +settled", r"^after +settled"],
    "bench/health_false_downs.py": [r"^this checker +\d+ +\d+", r"^reference +\d+ +\d+"],
    "bench/edge_bench.py": [r"^ceiling \(bare aiohttp\) +\d+", r"^l1-hit +POST /predict +\d+"],
    "bench/oip_peers.py": [rf"^\| {server}, compute \({driver}[^)]*\) \| 1 \| \d+"
                           for server in ("edge", "MLServer", "KServe", "Triton")
                           for driver in ("perf_analyzer", "wrk")],
    "bench/dns_fuzz.py": [r"^\| valid_vs_twin \| [\d.]+ \| [\d.]+ \|",
                          r"^server alive: True; internal errors logged: 0$"],
}
# programs the benches drive: installed here as on a fresh machine
PROGRAMS = {"bench/edge_bench.py": [("wrk", "wrk")],
            "bench/oip_peers.py": [("wrk", "wrk")],
            "bench/dns_fuzz.py": [("dnsperf", "dnsperf"), ("dig", "bind9-dnsutils")]}


def bench_commands() -> list[str]:
    found = [c for p in PAGES for c in commands(p.read_text())
             if re.match(r"\.venv/bin/python bench/", c) and c.split()[1] in SMALL]
    return list(dict.fromkeys(found))


def test_every_bench_here_is_shown_by_a_page():
    assert {c.split()[1] for c in bench_commands()} == set(SMALL)


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("command", bench_commands(), ids=lambda c: c.split()[1])
def test_bench_command_runs(command, system_program):
    script = command.split()[1]
    for binary, package in PROGRAMS.get(script, []):
        system_program(binary, package)
    # OLD/ is the page's placeholder for an older checkout: this one stands in for it
    argv = shlex.split(command.replace("OLD/", f"{ROOT}/")) + SMALL[script]
    done = subprocess.run([str(ROOT / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=1400)
    assert done.returncode == 0, done.stdout + done.stderr
    for pattern in PRINTS[script]:
        assert re.search(pattern, done.stdout, re.M), f"{pattern}\n{done.stdout}"
