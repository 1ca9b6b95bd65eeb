"""Every package that the code under src/ imports is the standard library, this project,
or a runtime dependency declared in pyproject.toml: a fresh install with only the runtime
dependencies (the Dockerfile, `bin/up`) never meets an ImportError that the dev extras
hid, and a package pulled in by another one is not relied on unnamed."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Modules of src/ that only developers run (they build files that are committed), whose
# imports come from the dev extra: the demo GeoIP database's builder.
DEV_TOOLS = {SRC / "geodns" / "steering" / "demo_db.py"}


def declared(extra: str | None = None) -> set[str]:
    """The distributions of [project.dependencies] (or of an optional extra), normalized,
    extras and pins dropped."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {normalized(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in specs}


def imported(paths: list[Path]) -> dict[str, Path]:
    """Top-level name of every absolute import in `paths` -> a file that imports it."""
    names: dict[str, Path] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                continue
            for name in found:
                names.setdefault(name.split(".")[0], path)
    return names


def undeclared(paths: list[Path], allowed: set[str]) -> list[str]:
    ours = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    distributions = packages_distributions()
    missing = []
    for name, path in sorted(imported(paths).items()):
        if name in sys.stdlib_module_names or name in ours or name == "__future__":
            continue
        # a distribution of one compiled module (siphash24) is known by its own name
        providers = {normalized(d) for d in distributions.get(name, [name])}
        if not providers & allowed:
            missing.append(f"{name} (imported by {path.relative_to(ROOT)}; "
                           f"from {', '.join(sorted(providers))})")
    return missing


def test_every_import_in_src_is_stdlib_ours_or_a_declared_dependency():
    runtime = [p for p in sorted(SRC.rglob("*.py")) if p not in DEV_TOOLS]
    assert undeclared(runtime, declared()) == [], \
        "imported by src/ but not in [project.dependencies]"
    assert undeclared(sorted(DEV_TOOLS), declared() | declared("dev")) == [], \
        "imported by a dev tool in src/ but declared nowhere"
