"""RFC 9018 interoperability: geodns and a real BIND 9 (`named`, Debian's bind9) on
loopback share one cookie secret with SipHash-2-4, and each accepts the server
cookies the other issues.

BIND is started with `require-server-cookie yes`, so it answers BADCOOKIE to a
cookie it cannot validate and answers normally otherwise. geodns shows that it
validated a cookie through response rate limiting: a source that proved its address
with a valid server cookie is never limited."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from dnstest import start_geodns, zones_copy

from cdn.processes import stop_process
from cdn.redis_server import free_port

SECRET = secrets.token_hex(16)
CLIENT = bytes.fromhex("0102030405060708")
ZONE = """$TTL 300
@ IN SOA ns1 hostmaster 1 7200 900 1209600 60
@ IN NS ns1
ns1 IN A 127.0.0.1
www IN A 192.0.2.99
"""


@pytest.fixture(scope="module")
def named(tmp_path_factory, system_program):
    binary = system_program("named", "bind9")
    tmp = tmp_path_factory.mktemp("named")
    port = free_port()
    (tmp / "bind.example.db").write_text(ZONE)
    (tmp / "named.conf").write_text(f"""
options {{
    directory "{tmp}";
    pid-file "{tmp}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    allow-transfer {{ none; }};
    cookie-algorithm siphash24;
    cookie-secret "{SECRET}";
    answer-cookie yes;
    require-server-cookie yes;
}};
controls {{ }};
zone "bind.example" {{ type primary; file "{tmp}/bind.example.db"; }};
""")
    log = (tmp / "named.log").open("w")
    proc = subprocess.Popen([binary, "-g", "-c", str(tmp / "named.conf")],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (tmp / "named.log").read_text()
        try:
            dns.query.tcp(dns.message.make_query("www.bind.example", "A"), "127.0.0.1",
                          port=port, timeout=1)
            break
        except (dns.exception.Timeout, OSError):
            assert time.monotonic() < deadline, (tmp / "named.log").read_text()
            time.sleep(0.2)
    yield port
    stop_process(proc)


@pytest.fixture(scope="module")
def geodns_rrl(tmp_path_factory):
    """geodns with the same secret and a rate limit that drops all but a trickle."""
    tmp = tmp_path_factory.mktemp("geodns-cookie")
    server = start_geodns(zones_copy(tmp), tmp, "--cookie-secret", SECRET,
                          "--rrl-rate", "1", "--rrl-window", "1", "--rrl-slip", "0")
    yield server
    server.stop()


def with_cookie(name: str, cookie: bytes, qid: int | None = None) -> dns.message.Message:
    return dns.message.make_query(name, "A", use_edns=0, id=qid,
                                  options=[dns.edns.GenericOption(dns.edns.COOKIE, cookie)])


def cookie_of(r: dns.message.Message) -> bytes:
    (opt,) = [o for o in r.options if o.otype == dns.edns.COOKIE]
    return opt.client + opt.server


def tampered(cookie: bytes) -> bytes:
    return cookie[:-1] + bytes([cookie[-1] ^ 1])


def ask_bind(port: int, cookie: bytes) -> dns.message.Message:
    return dns.query.udp(with_cookie("www.bind.example", cookie), "127.0.0.1", port=port,
                         timeout=60)


def answered_by_geodns(server, cookie: bytes, proof: bytes, count: int = 20) -> int:
    """How many of `count` queries sent back to back geodns answers (RRL drops the rest
    unless the cookie proves the source). A last query carrying `proof`, a cookie that
    proves the source, follows them on the same socket: geodns answers datagrams in the
    order they came, so once that answer is in, every answer to the others is too (no
    timeout decides what counts as unanswered)."""
    last = count + 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(60)  # only bounds a hang: `proof` is always answered
        s.connect(("127.0.0.1", server.port))
        for qid in range(1, count + 1):
            s.send(with_cookie("www.cdn.example", cookie, qid).to_wire())
        s.send(with_cookie("www.cdn.example", proof, last).to_wire())
        ids = set()
        while last not in ids:
            ids.add(dns.message.from_wire(s.recv(65535)).id)
    return len(ids - {last})


def test_bind_accepts_a_geodns_server_cookie(named, geodns_rrl):
    issued = cookie_of(geodns_rrl.query(with_cookie("www.cdn.example", CLIENT), tcp=True))
    assert len(issued) == 24 and issued[:8] == CLIENT
    r = ask_bind(named, issued)
    assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].address == "192.0.2.99"
    assert ask_bind(named, tampered(issued)).rcode() == dns.rcode.BADCOOKIE


def test_geodns_accepts_a_bind_server_cookie(named, geodns_rrl):
    r = ask_bind(named, CLIENT)  # a client cookie alone: BADCOOKIE with BIND's cookie
    assert r.rcode() == dns.rcode.BADCOOKIE
    issued = cookie_of(r)
    assert len(issued) == 24 and issued[:8] == CLIENT and issued[8] == 1
    assert ask_bind(named, issued).rcode() == dns.rcode.NOERROR  # BIND's own, valid
    assert answered_by_geodns(geodns_rrl, tampered(issued), issued) < 10  # not proven
    assert answered_by_geodns(geodns_rrl, issued, issued) == 20  # proven by BIND's cookie
