"""A real `geodns serve` process on loopback, for every geo test that needs one: started
on free ports, asked over DNS (`ask`, or `query` with a message of `ecs_query`) and over
its admin HTTP API (`http`, with the admin token)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.exception
import dns.message
import dns.query

from cdn.processes import stop_process
from cdn.redis_server import free_port

from .conftest import EXAMPLE_ZONE, ROOT

ADMIN_TOKEN = "test-admin-token"  # the servers' $GEODNS_ADMIN_TOKEN
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def ecs_query(name: str, rdtype: str = "A", ecs: str | None = None,
              options: list[dns.edns.Option] | None = None) -> dns.message.Message:
    """A query for `name`, with an EDNS Client Subnet option when `ecs` is given."""
    opts = list(options or [])
    if ecs is not None:
        address, prefix = ecs.split("/")
        opts.append(dns.edns.ECSOption(address, int(prefix)))
    return dns.message.make_query(name, rdtype, use_edns=0, options=opts)


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    http_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def query(self, msg: dns.message.Message, tcp: bool = False,
              source: str | None = None) -> dns.message.Message:
        for _ in range(5):  # a loaded machine may drop a UDP datagram: ask again
            try:
                if tcp:
                    return dns.query.tcp(msg, "127.0.0.1", port=self.port, timeout=30,
                                         source=source)
                return dns.query.udp(msg, "127.0.0.1", port=self.port, timeout=30,
                                     source=source)
            except dns.exception.Timeout:
                continue
        raise AssertionError(f"no answer from geodns on port {self.port}")

    def ask(self, name: str, rdtype: str = "A", ecs: str | None = None,
            source: str | None = None, tcp: bool = False,
            options: list[dns.edns.Option] | None = None) -> dns.message.Message:
        return self.query(ecs_query(name, rdtype, ecs, options), tcp=tcp, source=source)

    def http(self, method: str, path: str, body: object = None) -> object:
        """The admin API's JSON answer to `method path` (with the admin token)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={**ADMIN, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        stop_process(self.proc)


def example_zones(tmp: Path) -> Path:
    """The example zone without health URLs: steering is tested with every edge up
    (no edge processes run here; health checking has its own tests)."""
    out = tmp / "zones"
    out.mkdir(exist_ok=True)
    text = re.sub(r', health_url: "[^"]*"', "", EXAMPLE_ZONE.read_text())
    # and a static CNAME into the pool: `chain` -> `edge`
    text = text.replace("  edge: {pool: edges}\n",
                        "  edge: {pool: edges}\n  chain: {CNAME: edge}\n")
    (out / "cdn.example.yaml").write_text(text)
    (out / "coasts.test.yaml").write_text(COASTS_ZONE)
    return out


# A second zone: two US coasts, and a resolver network in Los Angeles.
COASTS_ZONE = """
zone: coasts.test
soa: {mname: ns1, rname: hostmaster, serial: 1, refresh: 7200, retry: 900,
      expire: 1209600, minimum: 60}
records:
  "@": {NS: [ns1]}
  ns1: {A: 127.0.0.1}
  edge: {pool: us}
pools:
  us:
    chain: [nearest, first_n]
    members:
      - {name: virginia, ipv4: 192.0.2.1, lat: 39.0438, lon: -77.4874, country: US}
      - {name: oregon, ipv4: 192.0.2.2, lat: 45.5152, lon: -122.6784, country: US}
nets:
  127.0.9.0/24: {lat: 34.0522, lon: -118.2437, country: US}
"""


def start(zones: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """`geodns serve --zones ZONES ARGS...` on free ports (`env`: its environment, default
    ours), once it answers DNS (its zones are loaded before it listens)."""
    port, http_port = free_port(), free_port()
    log = tmp / f"geodns-{port}.log"
    cmd = [sys.executable, "-m", "geodns.cli", "serve", "--zones", str(zones),
           "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}", *args]
    env = {**(os.environ if env is None else env), "GEODNS_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env=env)
    server = Server(proc, port, http_port, log)
    deadline = time.monotonic() + 120  # a loaded machine starts it slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"geodns exited: {log.read_text()}")
        try:  # (a datagram sent before the server listens is lost: ask again soon)
            dns.query.udp(dns.message.make_query(".", "SOA"), "127.0.0.1", port=port,
                          timeout=1)  # any answer (REFUSED: not our zone) will do
            return server
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"geodns did not answer: {log.read_text()}")
