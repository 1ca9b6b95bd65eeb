"""The README's `cdn up` block: its "Try:" lines are exactly what `cdn up` prints with its
default addresses, so the stack tests that run the printed lines run these
(test_end_to_end: the dig and client lines; test_distribution: make-models, publish and
rollout); and its two `cdn simulate` lines run as written against a launched stack, from
a folder laid out as a checkout after `bin/up` (the failover run shortened by options
appended after it, which win)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from cdn.cli import commands_to_try
from cdn.stack import Stack, StackConfig
from doc_commands import page, run, shell_env, workdir

ROOT = Path(__file__).resolve().parents[2]
SHORTER = "--duration 8 --at 1 --restart-after 2"


def try_lines() -> list[str]:
    block = page("README.md").split("\nTry:\n", 1)[1].split("\nCtrl-C stops everything.", 1)[0]
    return [line.strip() for line in block.splitlines() if not line.strip().startswith("#")]


def test_the_readme_shows_the_lines_cdn_up_prints(monkeypatch):
    monkeypatch.chdir(ROOT)  # `cdn up` prints .venv/bin/... as typed from the checkout
    assert try_lines() == [command for command, _ in commands_to_try(Stack(StackConfig()))]


def test_the_readme_simulate_lines_run_against_a_stack(stack, tmp_path):
    cwd = workdir(tmp_path / "checkout")
    (cwd / "run").symlink_to(stack.run_dir)
    world, failover = [line for line in try_lines() if " simulate " in line]
    out = run(world, cwd, shell_env(), timeout=600).stdout
    summary = re.match(r"3000 requests in [\d.]+ s \(\d+/s\), (\d+) failed; \d+ DNS lookups", out)
    assert summary and summary[1] == "0", out  # no edge was killed in this run
    assert "| edge | requests | failed |" in out
    assert (stack.run_dir / "plots" / "simulate-latency.png").stat().st_size > 10_000
    out = run(f"{failover} {SHORTER}", cwd, shell_env(), timeout=600).stdout
    assert out.count("killed tokyo") == 1 and out.count("restarted tokyo") == 1, out
    assert (stack.run_dir / "plots" / "simulate-failover.png").stat().st_size > 10_000
    deadline = time.monotonic() + 120  # the other stack tests find tokyo up again
    while stack.member_states()["tokyo"] != "up":
        assert time.monotonic() < deadline, stack.member_states()
        time.sleep(0.5)
