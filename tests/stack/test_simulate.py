"""`cdn simulate` as a user runs it against the running stack: clients in every demo city,
the per-region and per-edge tables, the plots, and an edge killed and restarted in the
middle of the run (its clients fail only until their answer's TTL runs out)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cdn.cities import demo_cities

CDN = str(Path(sys.executable).parent / "cdn")
HEADER = "| requests | failed | L1 | L2 | origin | p50 ms | p95 ms | p99 ms | origin offload |"


def rows(table: str) -> dict[str, list[str]]:
    """First column → the other cells, for a markdown table's body rows."""
    out = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break  # the events printed after the last table
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = cells[1:]
    return out


def test_simulate_reports_tables_and_plots_and_survives_a_killed_edge(stack, tmp_path):
    before = {c["name"]: c["pid"] for c in
              json.loads((stack.run_dir / "stack.json").read_text())["children"]}
    done = subprocess.run(
        [CDN, "simulate", "--run-dir", str(stack.run_dir), "--duration", "7",
         "--kill", "london", "--at", "1", "--restart-after", "2", "--plot-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300)  # a deadline for a hung run only
    assert done.returncode == 0, done.stderr
    out = done.stdout
    by_region, by_edge = out.split("\n\n")[1:3]
    assert by_region.startswith(f"| client region {HEADER}")
    assert by_edge.startswith(f"| edge {HEADER}")
    regions, edges = rows(by_region), rows(by_edge)
    assert set(regions) == {c.name for c in demo_cities()} | {"all"}
    # every request is counted once by region and once by edge (how many a loaded
    # machine manages in 7 s is for bench/, not for this test)
    total = int(regions["all"][0])
    assert total > 0
    assert sum(int(cells[0]) for name, cells in regions.items() if name != "all") == total
    assert sum(int(cells[0]) for cells in edges.values()) == total
    for cells in regions.values():
        assert cells[2].endswith("%") and cells[-1].endswith("%")
        assert float(cells[5]) <= float(cells[6]) <= float(cells[7])  # p50 <= p95 <= p99
    # only london's clients may fail (while their cached answer lives; whether any of
    # their requests falls in the 2 s it is down depends on the machine's pace, so the
    # count itself is not asserted); no other edge failed
    assert int(edges["london"][1]) <= int(edges["london"][0])
    assert all(int(cells[1]) == 0 for name, cells in edges.items() if name != "london"), out
    # the restart is always waited for, even when the load ends first
    assert out.count("killed london") == 1 and out.count("restarted london") == 1
    for png in ("simulate-latency.png", "simulate-failover.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {tmp_path / png}" in out
    # the restarted edge is recorded for the launcher, which stops it on Ctrl-C
    after = {c["name"]: c["pid"] for c in
             json.loads((stack.run_dir / "stack.json").read_text())["children"]}
    assert after["edge-london"] != before["edge-london"]
