"""docs/edge.md's shell commands, run as the page shows them: an origin and an edge
started by its lines (on free ports), its curl answered by the edge; the planner; and
the L2 bench as docs/benchmarks.md shows it (on small sizes: the documented run takes an
hour), both stores filled with the same entries."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

from cdn.redis_server import free_port
from doc_commands import (
    ROOT,
    block_with,
    page,
    run,
    run_block,
    sh_blocks,
    shell_env,
    substitute,
    workdir,
)


def test_the_origin_edge_and_curl_lines_run_and_answer_as_shown(tmp_path):
    lines = block_with("docs/edge.md", "/predict")
    ports = {"127.0.2.1:8000": f"127.0.2.1:{free_port('127.0.2.1')}",
             "127.0.1.1:8000": f"127.0.1.1:{free_port('127.0.1.1')}"}
    cwd = workdir(tmp_path)
    with run_block([substitute(line, ports) for line in lines], cwd, shell_env()) as results:
        (curl,) = [r for line, r in results.items() if line.startswith("curl ")]
    answer = json.loads(curl.stdout)
    shown = re.search(r"^# (\{.*?)\n```", page("docs/edge.md"), re.S | re.M).group(1)
    for key, value in re.findall(r'"(\w+)":("[^"]*"|false|true)', shown):
        assert answer[key] == json.loads(value), (key, answer)
    assert isinstance(answer["prediction"], float)


def test_the_planner_line_finds_the_cheapest_sizes_meeting_its_target(tmp_path):
    (line,) = block_with("docs/edge.md", "edge plan")
    out = run(line, workdir(tmp_path), shell_env()).stdout
    target = shlex.split(line)[-1]
    assert f"cheapest meeting the target {target}: L1 1MiB, L2 64MiB" in out, out


def test_the_l2_bench_command_runs(tmp_path):
    (command,) = [line for block in sh_blocks(page("docs/benchmarks.md")) for line in block
                  if "bench/l2_store.py" in line]
    argv = shlex.split(command)
    assert argv[:2] == [".venv/bin/python", "bench/l2_store.py"]
    small = [{"1GiB": "2MiB", "3": "1"}.get(a, a) for a in argv[2:]]
    out = subprocess.run([str(ROOT / argv[0]), str(ROOT / argv[1]), *small,
                          "--dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = {line.split("  ")[0]: line.split() for line in out.stdout.splitlines()[1:]}
    sqlite, files = rows["sqlite (DiskL2)"], rows["file per entry (old)"]
    assert sqlite[-7:-5] == files[-7:-5]  # the same entries, the same data bytes
    assert float(sqlite[-5].rstrip("x")) < float(files[-5].rstrip("x"))  # disk / data
    assert not list(tmp_path.iterdir())  # it removes what it wrote
