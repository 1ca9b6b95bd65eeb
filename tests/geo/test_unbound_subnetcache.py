"""A real recursive resolver with an ECS subnet cache in front of geodns.

Debian's unbound with its subnetcache module (`module-config: "subnetcache validator
iterator"`), on loopback, with stub zones pointing at geodns and nothing else to ask
(every other name is refused locally, so it never sends a query off the machine).
Clients from every network of the demo database, and from private, CGNAT, loopback,
link-local, ULA and unlocated networks, ask through unbound (their ECS option is
forwarded) in several orders; each must get the answer geodns gives them directly.
A resolver that caches an answer for more clients than it holds for (a too-wide ECS
scope) fails this.
"""

from __future__ import annotations

import csv
import ipaddress
import random
import subprocess
import time

import dns.exception
import dns.message
import dns.query
import pytest

from cdn.processes import stop_process
from cdn.redis_server import free_port
from geodns.steering.demo_db import DEMO_CSV

from .server import ecs_query
from .steering_servers import STATES, Fleet

NAMES = [("edge.plain.example", "A"), ("edge.plain.example", "AAAA"),
         ("edge.nets.example", "A"), ("fenced.plain.example", "A"), ("www.plain.example", "A")]
CHAINS = {"www.plain.example": "edge.plain.example"}  # a CNAME: unbound follows it
OTHERS = ["10.1.2.0/24", "10.200.0.0/24", "192.168.7.0/24", "172.16.9.0/24", "172.31.0.0/24",
          "100.64.1.0/24", "100.100.3.0/24", "127.0.0.0/24", "127.0.2.0/24", "169.254.4.0/24",
          "203.0.113.0/24", "11.0.7.0/24", "198.51.100.0/24", "fd00:1::/56", "fdff:9::/56",
          "fe80::/56", "::1/128", "2400:1:2::/56"]


def demo_clients() -> list[str]:
    """A client network (/24 or /56) in every network of the demo database."""
    lines = [ln for ln in DEMO_CSV.read_text(encoding="utf-8").splitlines()
             if not ln.startswith("#")]
    out = []
    for row in csv.DictReader(lines):
        net = ipaddress.ip_network(row["network"])
        grain = 24 if net.version == 4 else 56
        out.append(str(ipaddress.ip_network(f"{net.network_address}/{max(grain, net.prefixlen)}",
                                            strict=False)))
    return out


def unbound_config(tmp, port: int, geodns_port: int) -> str:
    zones = ("plain.example", "nets.example")
    lines = [
        "server:",
        f"  interface: 127.0.0.1@{port}",
        f"  port: {port}",
        "  outgoing-interface: 127.0.0.1",
        "  do-daemonize: no",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{tmp}"',
        f'  pidfile: "{tmp}/unbound.pid"',
        '  logfile: ""',
        "  use-syslog: no",
        "  verbosity: 1",
        "  do-ip6: no",
        "  do-not-query-localhost: no",
        "  access-control: 127.0.0.0/8 allow",
        '  module-config: "subnetcache validator iterator"',
        "  send-client-subnet: 127.0.0.1",
        "  max-client-subnet-ipv4: 24",
        "  max-client-subnet-ipv6: 56",
        "  qname-minimisation: no",
        "  prefetch: no",
        "  trust-anchor-signaling: no",
        "  root-key-sentinel: no",
        '  local-zone: "." refuse',  # nothing but the stub zones: no root hints used
        *(f'  local-zone: "{z}." transparent' for z in zones),
        *(f'  domain-insecure: "{z}."' for z in zones),
        "remote-control:",
        "  control-enable: no",
    ]
    for z in zones:
        lines += ["stub-zone:", f'  name: "{z}."', f"  stub-addr: 127.0.0.1@{geodns_port}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, system_program):
    unbound = system_program("unbound", "unbound")
    tmp = tmp_path_factory.mktemp("unbound")
    fleet = Fleet(tmp)
    server = fleet.start()
    fleet.set_state(STATES[0])
    port = free_port()
    conf = tmp / "unbound.conf"
    conf.write_text(unbound_config(tmp, port, server.port))
    subprocess.run([unbound + "-checkconf", str(conf)], check=True, capture_output=True)
    log = (tmp / "unbound.log").open("w")
    proc = subprocess.Popen([unbound, "-d", "-c", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            dns.query.udp(dns.message.make_query("edge.plain.example", "A"), "127.0.0.1",
                          port=port, timeout=1)
            break
        except (dns.exception.Timeout, OSError):
            assert proc.poll() is None, (tmp / "unbound.log").read_text()
            assert time.monotonic() < deadline, "unbound did not answer"
    yield server, port
    stop_process(proc)
    fleet.close()


def addresses(r: dns.message.Message) -> tuple[str, list[str]]:
    return r.rcode(), sorted(str(item) for rr in r.answer for item in rr
                             if rr.rdtype in (1, 28, 5))


@pytest.mark.timeout(900)
def test_every_client_gets_its_own_answer_through_unbounds_subnet_cache(stack):
    server, port = stack
    clients = demo_clients() + OTHERS
    direct = {}
    for name, rdtype in NAMES:
        for ecs in clients:
            direct[name, rdtype, ecs] = addresses(server.query(ecs_query(name, rdtype, ecs)))
    for (name, rdtype, ecs), (_, records) in list(direct.items()):
        if name in CHAINS:  # under ECS geodns answers the static link alone (scope 0)
            assert records == [CHAINS[name] + "."]
            target = direct[CHAINS[name], rdtype, ecs]
            direct[name, rdtype, ecs] = (target[0], sorted(records + target[1]))
    assert len({v for v in map(str, direct.values())}) > 5  # the answers do differ

    rng = random.Random(10)
    wrong = []
    for order in range(3):
        asked = [(n, t, e) for n, t in NAMES for e in clients]
        rng.shuffle(asked)
        for name, rdtype, ecs in asked:
            r = None
            for _ in range(5):
                try:
                    r = dns.query.udp(ecs_query(name, rdtype, ecs), "127.0.0.1", port=port,
                                      timeout=5)
                    break
                except dns.exception.Timeout:
                    continue
            assert r is not None, "unbound did not answer"
            if addresses(r) != direct[name, rdtype, ecs]:
                wrong.append((order, name, rdtype, ecs, addresses(r), direct[name, rdtype, ecs]))
    assert wrong == []
