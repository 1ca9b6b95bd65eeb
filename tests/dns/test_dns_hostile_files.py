"""Zone files made to hurt the loader: an alias bomb, an alias inside itself,
non-UTF-8, deep nesting, oversized TXT data and RRsets, CNAME loops. Each is a clear
problem naming the file and line, `geodns check` exits 1, and a reload of a running
server answers 422, counts a failed reload and keeps serving the last good zones,
quickly and without growing the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from dnstest import ADMIN, ROOT, start_geodns, zones_copy

HEAD = """\
zone: bad.example
soa: {mname: ns1, rname: hostmaster, serial: 1}
records:
  "@": {NS: [ns1]}
  ns1: {A: 192.0.2.1}
"""


def alias_bomb() -> bytes:
    """Nine levels of ten aliases each: 10**9 nodes once expanded, 1 KB written."""
    levels = ["      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        levels.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    body = "\n".join(levels)
    return (HEAD + "pools:\n  edges:\n    health:\n" + body + "\n"
            "    members: [{name: a, ipv4: 192.0.2.1, lat: 0, lon: 0}]\n").encode()


def deep_block(depth: int) -> bytes:
    lines = [HEAD + "pools:"]
    lines += ["  " * (i + 1) + f"k{i}:" for i in range(depth)]
    return ("\n".join(lines) + " x\n").encode()


def big_txt_rrset() -> bytes:
    values = ", ".join(f'"{i:04d}' + "x" * 240 + '"' for i in range(300))
    return (HEAD + f"  big: {{TXT: [{values}]}}\n").encode()


CASES = {
    "alias bomb": (alias_bomb(), None, "aliases expand the file to"),
    "alias inside itself": (HEAD.encode() + b"pools: &p {edges: *p}\n", 6,
                            "an alias refers to a node that contains it"),
    "not UTF-8": (HEAD.encode() + b"  www: {TXT: caf\xe9}\n", 6, "not UTF-8: octet 0xe9"),
    "deep block nesting": (deep_block(100), None, "nested deeper than 64 levels"),
    "deep flow nesting": ((HEAD + "pools: " + "[" * 20000 + "]" * 20000 + "\n").encode(), 6,
                          "not valid YAML"),
    "TXT over 65535 octets": ((HEAD + "  www: {TXT: " + "x" * 70000 + "}\n").encode(), 6,
                              "TXT data of 70,275 octets (a record holds at most 65,535)"),
    "character-string over 255": ((HEAD + '  www: {TXT: \'"' + "x" * 300 + '"\'}\n').encode(),
                                  6, "a character-string is 300 octets (max 255)"),
    "RRset over a TCP message": (big_txt_rrset(), 6, "more than a DNS message can hold"),
    "CNAME loop": ((HEAD + "  a: {CNAME: b}\n  b: {CNAME: c.bad.example.}\n  c: {CNAME: a}\n"
                    ).encode(), 6, "CNAME loop: a.bad.example. -> b.bad.example. -> "
                   "c.bad.example. -> a.bad.example."),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_names_file_line_and_problem(tmp_path, case):
    data, line, needle = CASES[case]
    (tmp_path / "bad.example.yaml").write_bytes(data)
    out = subprocess.run([sys.executable, "-m", "geodns.cli", "check", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    where = f"{tmp_path / 'bad.example.yaml'}" + (f":{line}:" if line else ":")
    assert any(p.startswith(where) and needle in p for p in out.stdout.splitlines()), out.stdout
    assert len(out.stdout) < 5000  # the bomb's expansion is not printed


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_reload_of_each_bad_file_is_422_and_the_zones_keep_serving(tmp_path):
    zones = zones_copy(tmp_path)
    server = start_geodns(zones, tmp_path)
    try:
        before = rss_kib(server.proc.pid)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            for failed, (case, (data, _, needle)) in enumerate(CASES.items(), 1):
                (zones / "bad.example.yaml").write_bytes(data)
                async with http.post(server.http + "/admin/reload", headers=ADMIN) as resp:
                    assert resp.status == 422, case
                    body = await resp.json()
                assert any("bad.example.yaml" in e and needle in e for e in body["errors"]), body
                async with http.get(server.http + "/metrics") as resp:
                    metrics = await resp.text()
                assert f'geodns_reloads_total{{result="failed"}} {failed:.1f}' in metrics
                r = server.ask("www.cdn.example")
                assert {x.to_text() for x in r.answer[0]} == {"192.0.2.10", "192.0.2.11"}
        assert server.proc.poll() is None and "Traceback" not in server.logs()
        assert len(server.logs()) < 100_000  # no expanded values in the log
        # bounded memory: the bomb is never expanded (it once took 1.4 GB)
        assert rss_kib(server.proc.pid) - before < 64 * 1024
    finally:
        server.stop()
