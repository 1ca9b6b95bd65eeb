"""Zone file validation: each problem names the file, the line, the owner and what is
wrong; `geodns check` prints them all and exits non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dnstest import ROOT

from geodns.zonefile import load_zones

HEAD = """\
zone: bad.example
ttl: 300
soa: {mname: ns1, rname: hostmaster, serial: 1}
records:
  "@": {NS: [ns1]}
  ns1: {A: 192.0.2.1}
"""


def problems_of(tmp_path: Path, body: str, head: str = HEAD) -> list[str]:
    d = tmp_path / "z"
    d.mkdir(exist_ok=True)
    (d / "bad.example.yaml").write_text(head + body)
    zones, problems = load_zones(d)
    assert not zones
    return [str(p) for p in problems]


@pytest.mark.parametrize("body, line, needle", [
    ("  api: {CNAME: www, A: 192.0.2.9}\n", 7, "api: CNAME beside other data (A)"),
    ("  out.example.: {A: 192.0.2.9}\n", 7, "outside the zone"),
    ("  www: {A: 192.0.2.300}\n", 7, "'192.0.2.300' is not an IPv4 address"),
    ("  www: {AAAA: '2001:db8::g'}\n", 7, "is not an IPv6 address"),
    ("  www: {A: 192.0.2.1, SPF: x}\n", 7, "unknown record type 'SPF'"),
    (f"  {'a' * 64}: {{A: 192.0.2.1}}\n", 7, "is 64 octets (max 63)"),
    ("  " + ".".join(["abcdefghij"] * 25) + ": {A: 192.0.2.1}\n", 7, "(max 255)"),
    ("  www: {A: {ttl: 2147483648, data: 192.0.2.1}}\n", 7, "ttl must be an integer from 0"),
    ("  www: {A: {ttl: -1, data: 192.0.2.1}}\n", 7, "ttl must be an integer from 0"),
    ("  www: {A: {tll: 5, data: 192.0.2.1}}\n", 7, "unknown key 'tll'"),
    ("  www: {MX: 'ten mail'}\n", 7, "MX preference must be an integer"),
    ("  www: {SRV: '1 2 mail'}\n", 7, "expected 'PRIORITY WEIGHT PORT TARGET'"),
    ("  www: {A: [192.0.2.1, 192.0.2.1]}\n", 7, "written twice"),
    ("  sub: {NS: ns.sub}\n  x.sub: {TXT: hi}\n", 8, "below the delegation"),
    ("  www: {pool: nosuch}\n", 7, "pool 'nosuch' is not defined"),
    ("  a.*.b: {A: 192.0.2.1}\n", 7, "'*' is allowed only"),
    ("  www: {SOA: x}\n", 7, "SOA belongs in the top-level"),
    ("  bücher: {A: 192.0.2.1}\n", 7, "is not ASCII"),
    ("  www: {CNAME: [a, b]}\n", 7, "only one CNAME"),
])
def test_each_problem_is_named_with_its_line(tmp_path, body, line, needle):
    problems = problems_of(tmp_path, body)
    assert len(problems) == 1, problems
    path = str(tmp_path / "z" / "bad.example.yaml")
    assert problems[0].startswith(f"{path}:{line}:"), problems[0]
    assert needle in problems[0]


def test_cname_at_apex_and_missing_ns(tmp_path):
    head = "zone: bad.example\nsoa: {mname: ns1, rname: hostmaster, serial: 1}\nrecords:\n"
    problems = problems_of(tmp_path, '  "@": {CNAME: elsewhere.example.}\n', head)
    assert any("CNAME is not allowed at the zone apex" in p for p in problems)
    assert any("'@' has no NS records" in p for p in problems)


def test_missing_soa_and_unknown_top_key(tmp_path):
    problems = problems_of(tmp_path, "", 'zone: bad.example\nrecrods: {}\n')
    text = "\n".join(problems)
    assert "missing 'soa:'" in text and "unknown key 'recrods'" in text
    assert "missing 'records:'" in text


def test_yaml_syntax_error_has_a_line(tmp_path):
    problems = problems_of(tmp_path, "  www: {A: [192.0.2.1}\n")
    assert ":7:" in problems[0] and "not valid YAML" in problems[0]


def test_duplicate_zone_across_files(tmp_path):
    d = tmp_path / "z"
    d.mkdir()
    (d / "one.yaml").write_text(HEAD)
    (d / "two.yaml").write_text(HEAD)
    zones, problems = load_zones(d)
    assert len(problems) == 1 and "already defined in" in str(problems[0])
    assert str(d / "two.yaml") in str(problems[0])


def test_every_problem_is_reported(tmp_path):
    problems = problems_of(tmp_path, "  a: {A: 1.2.3}\n  b: {AAAA: x}\n  c: {FOO: y}\n")
    assert [p.split(":")[1] for p in problems] == ["7", "8", "9"]


def geodns_check(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geodns.cli", "check", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_check_command(tmp_path):
    ok = geodns_check(ROOT / "zones")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 1 zone(s): cdn.example.")
    d = tmp_path / "z"
    d.mkdir()
    (d / "bad.example.yaml").write_text(HEAD + "  api: {CNAME: www, TXT: hi}\n  x: {A: 1}\n")
    bad = geodns_check(d)
    assert bad.returncode == 1
    assert "bad.example.yaml:7: api: CNAME beside other data (TXT)" in bad.stdout
    assert "bad.example.yaml:8: x: A: '1' is not an IPv4 address" in bad.stdout


def test_help_on_every_command():
    for args in (["--help"], ["serve", "--help"], ["check", "--help"]):
        out = subprocess.run([sys.executable, "-m", "geodns.cli", *args], capture_output=True,
                             text=True, cwd=ROOT, timeout=30)
        assert out.returncode == 0 and "usage: geodns" in out.stdout


def test_steering_problems_point_at_their_line(tmp_path):
    body = """  edge: {pool: p}
pools:
  p:
    members:
      - {name: a, ipv4: 192.0.2.1, lat: 10, lon: 10}
      - {name: b, ipv4: 192.0.2.2, lat: 95, lon: 10}
nets:
  10.1.0.0/16: {lat: 10, lon: 200}
"""
    problems = problems_of(tmp_path, body)
    assert [p.split(":")[1] for p in problems] == ["12", "14"], problems
    assert "pools.p.members[1].lat" in problems[0]
    assert "nets.10.1.0.0/16.lon" in problems[1]
