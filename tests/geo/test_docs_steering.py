"""docs/steering.md: its command runs, and prints the table the page shows."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT


def has_commit(rev: str) -> bool:
    """The clone holds `rev` (a shallow clone or an unpacked archive may not)."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           cwd=ROOT, capture_output=True)
    return found.returncode == 0


def without_column(row: str, index: int) -> str:
    cells = row.split("|")
    return "|".join(cells[:index + 1] + cells[index + 2:])


@pytest.mark.timeout(900)
def test_the_scenario_table_is_what_the_documented_command_prints():
    """The page's command, run here; without the history that holds its `--before`
    revision, the same command without `--before`, checked against the page's 'after'
    column (the 'before' column is that revision's, recorded)."""
    page = (ROOT / "docs" / "steering.md").read_text()
    (command,) = re.findall(r"^\.venv/bin/python (bench/steering_scenarios\.py.*)$", page, re.M)
    shown = page[page.index("<!-- BEGIN steering-scenarios -->"):
                 page.index("<!-- END steering-scenarios -->")]
    expected = [line for line in shown.splitlines() if line.startswith("|")]
    (before,) = re.findall(r"--before (\S+)", command)
    args = command.split()
    if not has_commit(before):
        args = [a for a in args if a not in ("--before", before)]
        expected = [without_column(line, 2) for line in expected]  # scenario, client, ...
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=800, check=True).stdout
    printed = [line for line in out.splitlines() if line.startswith("|")]
    assert printed == expected
