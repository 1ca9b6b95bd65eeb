"""The L2 bench command in docs/benchmarks.md runs as shown (on small sizes: the
documented run takes an hour) and prints both stores' rows, filled with the same
entries, the old store using more disk per byte held."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def doc_commands() -> list[str]:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text, re.S)


def test_the_l2_bench_command_runs(tmp_path):
    (command,) = [c for c in doc_commands() if "bench/l2_store.py" in c]
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
