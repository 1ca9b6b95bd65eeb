"""A real `geodns serve` with health checking, its zone, and DNS questions to it.

Used by the end-to-end failover test and by `bench/health_failover.py`. The zone has
one pool, `edges`, whose members are `MemberServer`s on their own loopback addresses;
`nets:` places one ECS client network in each member's city, so "the client near
london" is a query carrying ECS 198.18.<i>.0/24.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.rcode
import yaml
from health_members import MemberServer

from cdn.processes import stop_process
from cdn.redis_server import free_port as free_tcp_port

ZONE = "failover.example"
NAME = f"edge.{ZONE}."
CITIES = {
    "london": (51.5074, -0.1278),
    "frankfurt": (50.1109, 8.6821),
    "paris": (48.8566, 2.3522),
    "tokyo": (35.6895, 139.6917),
}
GEODNS = str(Path(sys.executable).parent / "geodns")


def client_net(city: str) -> str:
    """The ECS network of the demo client in `city`."""
    return f"198.18.{list(CITIES).index(city) + 1}.0"


def write_zone(directory: Path, members: dict[str, MemberServer], health: dict | None = None,
               ttl: int = 30) -> None:
    pool = {
        "ttl": ttl,
        "members": [
            {"name": name, "ipv4": s.host, "lat": CITIES[name][0], "lon": CITIES[name][1],
             "health_url": s.url}
            for name, s in members.items()
        ],
    }
    if health:
        pool["health"] = health
    doc = {
        "zone": ZONE,
        "soa": {"mname": "ns1", "rname": "hostmaster", "serial": 1},
        "records": {"@": {"NS": ["ns1"]}, "ns1": {"A": "127.0.0.1"}, "edge": {"pool": "edges"}},
        "pools": {"edges": pool},
        "nets": {f"{client_net(c)}/24": {"lat": lat, "lon": lon}
                 for c, (lat, lon) in CITIES.items()},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{ZONE}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        port = free_tcp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@dataclass
class GeoDNS:
    """`geodns serve` as a subprocess, stopped by its PID."""

    zones: Path
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    log: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> GeoDNS:
        out = open(self.log, "w") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [GEODNS, "serve", "--zones", str(self.zones),
             "--listen", f"127.0.0.1:{self.port}", "--http", f"127.0.0.1:{self.http_port}",
             *self.args],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass(frozen=True)
class Reply:
    rcode: str  # "NOERROR", "SERVFAIL", ... or "TIMEOUT" (no answer yet)
    addresses: tuple[str, ...] = ()
    ttl: int | None = None


async def ask(port: int, city: str, timeout: float = 0.5) -> Reply:
    """`edge.failover.example A` for the client in `city` (by ECS), over UDP. A short
    `timeout` suits polling; a test that needs this very answer gives a long one."""
    q = dns.message.make_query(NAME, "A", use_edns=0,
                               options=[dns.edns.ECSOption(client_net(city), 24)])
    try:
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except (dns.exception.Timeout, ConnectionRefusedError, OSError):
        return Reply("TIMEOUT")
    addrs = tuple(sorted(rd.address for rrset in r.answer for rd in rrset if rd.rdtype == 1))
    ttl = r.answer[0].ttl if r.answer else None
    return Reply(dns.rcode.to_text(r.rcode()), addrs, ttl)


async def until(port: int, city: str, predicate, timeout: float, step: float = 0.02
                ) -> tuple[float, Reply]:
    """Ask every `step` s until `predicate(reply)`; (seconds it took, that reply)."""
    start = time.monotonic()
    while True:
        reply = await ask(port, city)
        if predicate(reply):
            return time.monotonic() - start, reply
        if time.monotonic() - start > timeout:
            raise AssertionError(f"no such answer for {city} within {timeout} s: {reply}")
        await asyncio.sleep(step)
