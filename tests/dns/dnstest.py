"""Helpers of the DNS tests: a real `geodns serve` process on loopback, and queries."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from cdn.processes import stop_process
from cdn.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
TEST_ZONES = Path(__file__).parent / "zones"
ADMIN_TOKEN = "test-admin-token"  # the servers' $GEODNS_ADMIN_TOKEN
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HANG = 60  # seconds: a socket timeout that only bounds a hang (a loaded machine is slow)


@dataclass
class GeoDNS:
    proc: subprocess.Popen
    port: int
    http_port: int
    zones: Path
    log: Path
    host: str = "127.0.0.1"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def query(self, msg: dns.message.Message, tcp: bool = False, timeout: float = HANG,
              **kw) -> dns.message.Message:
        if tcp:
            return dns.query.tcp(msg, self.host, port=self.port, timeout=timeout, **kw)
        return dns.query.udp(msg, self.host, port=self.port, timeout=timeout, **kw)

    def ask(self, name: str, rdtype: str = "A", tcp: bool = False, **make_kw):
        return self.query(dns.message.make_query(name, rdtype, **make_kw), tcp=tcp)

    def stop(self) -> None:
        stop_process(self.proc)

    def logs(self) -> str:
        return self.log.read_text()


def start_geodns(zones: Path, tmp: Path, *args: str, wait: str = "www.cdn.example",
                 ipv6: bool = False) -> GeoDNS:
    """Start `geodns serve` on free ports (also on [::1] when `ipv6`); return once it
    answers `wait` over UDP and its HTTP port takes connections."""
    port, http_port = free_port(), free_port()
    if ipv6:
        args = (*args, "--listen", f"[::1]:{port}")
    log = tmp / f"geodns-{port}.log"
    cmd = [sys.executable, "-m", "geodns.cli", "serve", "--zones", str(zones),
           "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}",
           *args]
    env = {**os.environ, "GEODNS_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env=env)
    server = GeoDNS(proc, port, http_port, zones, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"geodns exited: {log.read_text()}")
        try:  # (a datagram sent before the server listens is lost: ask again soon)
            server.query(dns.message.make_query(wait, "A"), timeout=1)
            socket.create_connection(("127.0.0.1", http_port), timeout=2).close()
            return server
        except (dns.exception.Timeout, ConnectionError, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"geodns did not answer: {log.read_text()}")


def zones_copy(tmp: Path) -> Path:
    """The example zones and the test zones in a directory a test may edit."""
    out = tmp / "zones"
    out.mkdir()
    shutil.copy(ROOT / "zones" / "cdn.example.yaml", out)
    shutil.copy(TEST_ZONES / "test.example.yaml", out)
    return out


def rcode(msg: dns.message.Message) -> str:
    return dns.rcode.to_text(msg.rcode())


def raw(geodns, wire: bytes, tcp: bool) -> bytes:
    """Send bytes as they are; return the raw response."""
    if tcp:
        with socket.create_connection(("127.0.0.1", geodns.port), timeout=HANG) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", _recv(s, 2))[0]
            return _recv(s, size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(HANG)
        s.sendto(wire, ("127.0.0.1", geodns.port))
        return s.recv(65535)


def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data
