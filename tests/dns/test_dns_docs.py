"""docs/dns.md's commands: the `dig` lines of its table answer as documented, over UDP
and TCP, with the real dig; its geo-steered dig and admin curl lines run against the same
server; its `geodns check` example prints what the page shows."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from dnstest import ADMIN_TOKEN, ROOT

from doc_commands import commands, page, run, shell_env, substitute


def readme_rows() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "dns.md").read_text()
    section = text[text.index("<!-- BEGIN dns -->"): text.index("<!-- END dns -->")]
    rows = re.findall(r"^\| `(dig [^`]+)` \| (.+) \|$", section, re.M)
    assert len(rows) >= 6
    return rows


@pytest.fixture(scope="module")
def dig(system_program) -> str:
    return system_program("dig", "bind9-dnsutils")


def sections(output: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {"ANSWER": [], "AUTHORITY": []}
    current = None
    for line in output.splitlines():
        m = re.match(r";; (\w+) SECTION:", line)
        if m:
            current = m.group(1)
        elif not line.strip() or line.startswith(";"):
            current = None if not line.strip() else current
        elif current in out:
            out[current].append(line.split(None, 4))
    return out


@pytest.mark.parametrize("row", readme_rows(), ids=lambda r: r[0])
@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_readme_dig_line(geodns, dig, row, transport):
    command, expect = row
    args = command.replace("-p 5353", f"-p {geodns.port}").split()[1:]
    out = subprocess.run([dig, *args, transport, "+time=3", "+tries=1"], capture_output=True,
                         text=True, timeout=20).stdout
    status = re.search(r"status: (\w+)", out).group(1)
    flags = re.search(r";; flags: ([a-z ]+);", out).group(1).split()
    assert status == expect.split(",")[0].split(":")[0], out
    if "no aa" in expect or status == "REFUSED":
        assert "aa" not in flags, out
    else:
        assert "aa" in flags, out
    found = sections(out)
    answer = sorted(rr[4] for rr in found["ANSWER"])
    values = sorted(v for v in re.findall(r"`([^`]+)`", expect) if not v.startswith("-"))
    if "referral" in expect:
        assert not answer and set(values) <= {rr[4] for rr in found["AUTHORITY"]}, out
    elif "id.server" in command:
        assert answer == ['"test-node"'], out
    else:
        assert answer == values, out
    if "SOA in AUTHORITY with TTL" in expect:
        ttl = re.search(r"TTL (\d+)", expect).group(1)
        (soa,) = found["AUTHORITY"]
        assert soa[3] == "SOA" and soa[1] == ttl, out


def prose_commands() -> list[str]:
    """The page's commands outside its table: a geo-steered dig, the admin curl lines."""
    table = {command for command, _ in readme_rows()}
    return [c for c in commands(page("docs/dns.md"))
            if c.split()[0] in ("dig", "curl") and c not in table]


def test_the_geo_dig_and_admin_curl_lines_run(geodns, dig):
    lines = prose_commands()
    assert {c.split()[0] for c in lines} == {"dig", "curl"} and len(lines) >= 3, lines
    moved = {"-p 5353": f"-p {geodns.port}", "127.0.0.1:8053": f"127.0.0.1:{geodns.http_port}"}
    env = shell_env(TOKEN=ADMIN_TOKEN)
    for line in lines:
        out = run(substitute(line, moved), ROOT, env).stdout
        if line.startswith("dig "):
            assert "status: NOERROR" in out and "CLIENT-SUBNET: 81.2.1.0/24/" in out, out
            assert re.search(r"^edge\.cdn\.example\.\s+\d+\s+IN\s+A\s+127\.0\.1\.\d$", out,
                             re.M), out
        elif "/metrics" in line:
            assert "geodns_queries_total" in out, out[:2000]
        else:
            assert json.loads(out)["ok"] is True, out


def test_geodns_check_reports_the_two_problems_the_page_shows(tmp_path):
    """The page's example: the repository's zone with www's AAAA mistyped and a TXT
    beside api's CNAME, checked by the page's command."""
    text = page("docs/dns.md")
    (shown,) = re.findall(r"```\n\$ (geodns check zones/)\n(.*?)```", text, re.S)
    zones = tmp_path / "zones"
    zones.mkdir()
    zone = (ROOT / "zones" / "cdn.example.yaml").read_text()
    broken = zone.replace("AAAA: 2001:db8::10\n", "AAAA: 2001:db8::zz\n", 1).replace(
        "api: {CNAME: www}", "api: {CNAME: www, TXT: oops}", 1)
    (zones / "cdn.example.yaml").write_text(broken)
    done = subprocess.run(["bash", "-c", shown[0]], cwd=tmp_path, env=shell_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stdout + done.stderr == shown[1]
