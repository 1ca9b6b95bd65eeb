"""The `dig` lines of docs/dns.md answer as documented, over UDP and TCP, with the real dig."""

from __future__ import annotations

import re
import subprocess

import pytest
from dnstest import ROOT


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
