"""docs/steering.md: its commands run and print what the page shows."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cdn.redis_server import free_port
from doc_commands import run, run_block, shell_env, workdir

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


def test_the_explain_lines_print_what_the_page_shows():
    """Run from a checkout as the page shows them (its zones, the demo GeoIP database)."""
    page = (ROOT / "docs" / "steering.md").read_text()
    shown = re.findall(r"```\n\$ (geodns explain [^\n]*)\n(.*?)```", page, re.S)
    assert len(shown) == 2
    for command, output in shown:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=shell_env(),
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout) == (0, output), done.stderr


def test_the_dig_line_from_a_tokyo_address_gets_tokyo(tmp_path, system_program):
    """The page's `dig -b 127.0.2.1 ...` against `geodns serve` on the example zone (on a
    free port; the pool held up by an override, since no edges run here)."""
    system_program("dig", "bind9-dnsutils")
    page = (ROOT / "docs" / "steering.md").read_text()
    (line,) = re.findall(r"`(dig -b 127\.0\.2\.1 [^`]+)`", page)
    cwd = workdir(tmp_path, "zones")
    (cwd / "up.yaml").write_text("overrides:\n  - {pool: edges, state: up}\n")
    port = free_port()
    server = f"geodns serve --zones zones --overrides up.yaml --listen 127.0.0.1:{port}"
    with run_block([server], cwd, shell_env()):
        out = run(line.replace("-p 5353", f"-p {port}") + " +short", cwd, shell_env()).stdout
    assert out.split() == ["127.0.1.1"], out  # tokyo's address
