"""docs/steering.md: its commands run and print what the page shows."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from doc_commands import shell_env

from .steering_servers import ROOT


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


def test_the_explain_lines_print_what_the_page_shows():
    """Run from a checkout as the page shows them (its zones, the demo GeoIP database)."""
    page = (ROOT / "docs" / "steering.md").read_text()
    shown = re.findall(r"```\n\$ (geodns explain [^\n]*)\n(.*?)```", page, re.S)
    assert len(shown) == 2
    for command, output in shown:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=shell_env(),
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout) == (0, output), done.stderr
