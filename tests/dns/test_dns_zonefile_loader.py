"""The zone loader's YAML resolver (`zonefile._Loader`) gives every node the tag, and so
every value, that PyYAML's own yaml.CSafeLoader gives it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml

from geodns.zonefile import _Loader

ROOT = Path(__file__).resolve().parents[2]

# each implicit YAML 1.1 type in its spellings, near misses, and the forms quoted
SCALARS = [
    "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
    "on", "On", "ON", "off", "Off", "OFF", "y", "n", "tRUE", "yess",
    "~", "null", "Null", "NULL", "", "nul", "none",
    "0", "7", "-3", "+12", "1_000", "0b101", "-0b1", "017", "0o17", "0x1F", "-0xff",
    "190:20:30", "09", "0_7",
    "1.5", "-1.5", "+.5", ".5", "1e3", "1.0e+3", "6.8523015e+5", "685.230_15e+03",
    "190:20:30.15", ".inf", "-.Inf", "+.INF", ".nan", ".NaN", ".NAN", "1.", "-.",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
    "2001-12-15T02:59:43.1Z", "2002-1-1", "2002-1-32x",
    "<<", "=", "!x", "&y", "*z", "10.0.0.1", "2001:db8::1", "10.0.0.0/8", "@", "host7",
    "ns1.", "0 issue \"ca.example\"", "10 mail", "-", "+", ".", "1:2",
]


def _tags(node: yaml.Node) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append((type(n).__name__, n.tag, n.value if isinstance(n, yaml.ScalarNode) else None))
        if isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            stack.extend(x for pair in n.value for x in pair)
    return out


def _value(loader: yaml.CSafeLoader, node: yaml.Node) -> str:
    """The constructed value's repr (nan != nan), or the error constructing it."""
    try:
        return repr(loader.construct_document(node))
    except (yaml.YAMLError, ValueError) as e:
        return f"error: {e}"


def _same(text: str) -> None:
    ours, theirs = _Loader(text), yaml.CSafeLoader(text)
    try:
        a, b = ours.get_single_node(), theirs.get_single_node()
        assert (a is None) == (b is None)
        if a is None or b is None:
            return
        assert _tags(a) == _tags(b)
        assert _value(ours, a) == _value(theirs, b)
    finally:
        ours.dispose()
        theirs.dispose()


def test_every_implicit_type_resolves_as_the_safe_loader_does() -> None:
    plain = "\n".join(f"- {s}" for s in SCALARS if s[:1] not in ("!", "&", "*", "@"))
    quoted = "\n".join(f"- {s!r}".replace("\\", "") for s in SCALARS)
    as_keys = "\n".join(f"{s}: {s!r}" for s in SCALARS
                         if s and s[0] not in "!&*@-<~=?" and ":" not in s)
    for text in (plain, quoted, as_keys, "!!str 10\n", "? [a, 1]\n: {b: !!int '3'}\n"):
        _same(text)


def test_the_repository_zones_parse_the_same(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "bench/big_zone.py"), "--records", "2000",
                    "--pools", "50", str(tmp_path / "big")], check=True, capture_output=True)
    files = sorted({*(ROOT / "zones").glob("*.yaml"), *(ROOT / "bench").glob("**/*.yaml"),
                    *(ROOT / "tests").glob("**/*.yaml"), *(tmp_path / "big").glob("**/*.yaml")})
    assert len(files) >= 4, files
    for path in files:
        _same(path.read_text())


def test_the_test_suites_zone_texts_parse_the_same() -> None:
    """Every string of several lines in the tests that YAML reads (zones, pools, nets,
    settings), as written in the test sources (f-string parts included)."""
    count = 0
    for test in (ROOT / "tests").glob("**/test_*.py"):
        for node in ast.walk(ast.parse(test.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and ":" in node.value and "\n" in node.value:
                try:
                    yaml.safe_load(node.value)
                except yaml.YAMLError:
                    continue
                _same(node.value)
                count += 1
    assert count >= 50
