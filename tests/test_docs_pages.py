"""The README and the pages under docs/: short README, links that lead somewhere, nothing
that points outside the repository, and every shell command of our programs accepted by
the program's real command-line parser. (The pages' `dig` lines are run against a real
server by tests/dns/test_dns_docs.py; the lines `cdn up` prints, by tests/stack/.)"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTSIDE = re.compile(r"\.\./shared|design doc|the seeds|other helpers|helpers of the project",
                     re.I)
# Shell variables the pages' examples set or assume, with a value of the right shape.
VARIABLES = {"O": "--origin=http://127.0.0.1:8000", "TOKEN": "t0ken"}


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    from cdn.cli import parser as cdn_parser
    from edge.cli import build_parser as edge_parser
    from geodns.cli import build_parser as geodns_parser
    from geodns.plugins import load_plugins
    from healthcheck.cli import build_parser as healthcheck_parser

    return {"cdn": cdn_parser, "edge": edge_parser, "healthcheck": healthcheck_parser,
            "geodns": lambda: geodns_parser(load_plugins())}


def shell_commands(text: str) -> list[str]:
    """The command lines of a page's sh blocks (continuations joined, comments cut)."""
    out = []
    for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_nothing_refers_to_material_outside_the_repository(page):
    assert not [line for line in page.read_text().splitlines() if OUTSIDE.search(line)]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_lead_to_files_and_headings_of_the_repository(page):
    text = page.read_text()
    fenced = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", fenced):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page_id(page)}: {target} leads nowhere"
        assert ROOT in linked.parents or linked == ROOT, target
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{page_id(page)}: no #{anchor}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_of_our_programs_is_accepted_by_its_parser(page):
    programs = parsers()
    checked = 0
    for line in shell_commands(page.read_text()):
        for name, value in VARIABLES.items():
            line = line.replace(f"${name}", value)
        words = shlex.split(line)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)  # VAR=value before the command
        if not words:
            continue
        program = Path(words[0]).name
        if program not in programs:
            continue
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            try:
                programs[program]().parse_args(words[1:])
            except SystemExit as exc:
                pytest.fail(f"{page_id(page)}: `{line}`: {errors.getvalue()} ({exc})")
        checked += 1
    if page.name in ("distribution.md", "edge.md", "health.md"):
        assert checked, f"{page_id(page)} shows commands of our programs"
