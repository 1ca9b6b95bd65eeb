"""The inference-server bench that docs/benchmarks.md quotes runs as shown there, briefly
(one round of 1 s at concurrency 1; argparse lets the last value win): it installs its
own perf_analyzer, MLServer, KServe and pytriton, and prints a row for every server."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--runs", "1", "--seconds", "1", "--concurrency", "1"]


def test_the_oip_peers_bench_command_runs():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    (command,) = re.findall(r"^(\.venv/bin/python bench/oip_peers\.py[^\n#]*)", text, re.M)
    argv = shlex.split(command)
    out = subprocess.run([str(ROOT / argv[0]), *argv[1:], *SMALL], cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = re.findall(r"^\| ([^|]+) \| 1 \| (\d+) \| [\d.]+ \| (\d+) \|$", out.stdout, re.M)
    served = {name.split(",")[0]: int(rps) for name, rps, _per_cpu in rows}
    assert set(served) == {"edge", "MLServer", "KServe", "Triton"}, out.stdout
    assert all(rps > 0 for rps in served.values()), rows
    assert re.search(r"^c=1: edge compute / Triton compute: ", out.stdout, re.M)
