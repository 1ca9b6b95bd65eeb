"""docs/steering.md: its command runs, and prints the table the page shows."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.timeout(900)
def test_the_scenario_table_is_what_the_documented_command_prints():
    page = (ROOT / "docs" / "steering.md").read_text()
    (command,) = re.findall(r"^\.venv/bin/python (bench/steering_scenarios\.py.*)$", page, re.M)
    shown = page[page.index("<!-- BEGIN steering-scenarios -->"):
                 page.index("<!-- END steering-scenarios -->")]
    out = subprocess.run([sys.executable, *command.split()], cwd=ROOT, capture_output=True,
                         text=True, timeout=800, check=True).stdout
    printed = [line for line in out.splitlines() if line.startswith("|")]
    assert printed == [line for line in shown.splitlines() if line.startswith("|")]
