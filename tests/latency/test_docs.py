"""Every shell command in docs/latency.md runs and prints what the page shows (the
benchmark and the simulator shortened by extra options, which come last and win)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "latency.md"
SHORTER = {
    "bench/latency_world.py": ["--scale", "0.25", "--clients", "1", "--ttl", "2",
                               "--appear", "25", "--clear", "50", "--end", "75"],
    "simulate --world": ["--world-seconds", "4", "--world-clients", "1"],
}
EXPECT = {
    "bench/latency_world.py": ["median RTT: geo", "Seoul *", "Madrid: anomaly appeared"],
    "simulate --world": ["origin p50/p95/p99 ms", "all (latency)", "plot: "],
}


def commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", PAGE.read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_page_shows_these_commands() -> None:
    assert len(commands()) == len(SHORTER)


@pytest.mark.timeout(600)
def test_every_command_runs_as_shown(tmp_path) -> None:
    for line in commands():
        key = next(k for k in SHORTER if k in line)
        argv = shlex.split(line) + SHORTER[key]
        if "simulate" in key:
            argv += ["--plot-dir", str(tmp_path)]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stdout + done.stderr
        for text in EXPECT[key]:
            assert text in done.stdout, done.stdout
        if "simulate" in key:
            assert (tmp_path / "simulate-world.png").stat().st_size > 10_000
