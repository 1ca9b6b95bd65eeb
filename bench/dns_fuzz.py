#!/usr/bin/env python3
"""DNS fuzz bench: hostile traffic must leave no lasting mark on geodns.

Starts two `geodns serve` (the bench zone `bench/anchors-zones`, the demo GeoIP
database, no health checking) on free loopback ports: the one fuzzed and a twin that
only gets the warm-up, then:

1. warm-up (both): one query for each label set of the query metrics
   (`label_sweep`), and the first 2% of the fuzz traffic; then the reference figures
   of the fresh server: metric series (/metrics), RSS, idle CPU, and queries per
   server CPU-second for valid queries (dnsperf, the mix of bench/dns_bench.py),
   measured in turns with the twin's (so that both meet the same moments of a shared
   machine: `valid_vs_twin` is the median of the per-turn ratios);
2. the fuzz: `--udp` packets and `--tcp` messages (seeded: `--seed`), a mix of
   mutated valid queries (bit flips, replaced, inserted and deleted octets, cuts),
   random but well-formed queries (any octets in names under and outside the zone,
   any type and class, flags, EDNS with random ECS, cookies, NSID, padding, unknown
   options, TSIG) and random bytes; TCP messages go 20 to a connection, some with a
   wrong length prefix; stopped early after `--max-seconds`;
3. the same figures again, after the server has been idle a few seconds (after each
   round with `--rounds N`: the answer caches fill up to their bound in the first
   rounds, so a later round shows whether anything still grows).

Prints both columns and the ratios, and with `--json FILE` writes them. Exit status 1
when the server died or logged an internal error, or (with `--check`) when the
series count or RSS grew by more than 10%.

    .venv/bin/python bench/dns_fuzz.py                        # 500,000 UDP + 20,000 TCP
    .venv/bin/python bench/dns_fuzz.py --udp 20000 --tcp 1000 --check   # a short run
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dns.edns
import dns.message
import dns.tsigkeyring
import maxminddb

from cdn.redis_server import free_port
from dns_bench import Server, dnsperf, ensure_programs, query_file
from geodns.steering.geoip import DEMO_MMDB

ROOT = Path(__file__).resolve().parents[1]
ZONES = ROOT / "bench" / "anchors-zones"
ZONE_LABELS = [b"cdn", b"example"]
NAMES = ["www.cdn.example", "edge.cdn.example", "cdn.example", "ns1.cdn.example",
         "nope.cdn.example", "other.example"]


def seed_queries() -> list[bytes]:
    keyring = dns.tsigkeyring.from_text({"k.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    out = []
    for name in NAMES:
        for rdtype in ("A", "AAAA", "TXT", "ANY", "SOA"):
            out.append(dns.message.make_query(name, rdtype).to_wire())
        out.append(dns.message.make_query(name, "A", use_edns=0, options=[
            dns.edns.ECSOption("198.51.100.0", 24),
            dns.edns.GenericOption(dns.edns.COOKIE, bytes(8)),
            dns.edns.GenericOption(dns.edns.NSID, b"")]).to_wire())
        signed = dns.message.make_query(name, "A")
        signed.use_tsig(keyring, keyname="k.")
        out.append(signed.to_wire())
    return out


def label_sweep() -> list[bytes]:
    """One query for each metric label set that a query can reach: every type code up
    to 300 (past CAA) and 65535, for a name in the zone, an unknown one in it and one
    outside it, plain, with EDNS version 1 (BADVERS), as NOTIFY (NOTIMP), with two
    questions or a trailing octet (FORMERR) and TSIG-signed (NOTAUTH); and the steered
    name for a client in each network of the demo GeoIP database (its region label)."""
    keyring = dns.tsigkeyring.from_text({"k.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    out = []
    with maxminddb.open_database(str(DEMO_MMDB)) as db:  # every client region
        for network, _ in db:
            if network.version == 4 and network.prefixlen <= 24:
                ecs = dns.edns.ECSOption(str(network.network_address), network.prefixlen)
                out.append(dns.message.make_query("edge.cdn.example", "A", use_edns=0,
                                                  options=[ecs]).to_wire())
    for qtype in [*range(301), 65535]:
        for name in ("www.cdn.example", "nope.cdn.example", "other.example"):
            wire = dns.message.make_query(name, qtype).to_wire()
            out.append(wire)
            badvers = bytearray(dns.message.make_query(name, qtype, use_edns=0).to_wire())
            badvers[-5] = 1
            out.append(bytes(badvers))
            notify = wire[:2] + bytes([wire[2] | 0x20]) + wire[3:]  # opcode 4
            out += [notify, notify[:4] + b"\x00\x00" + notify[6:12]]  # NOTIMP
            out += [wire[:4] + b"\x00\x02" + wire[6:] + wire[12:], wire + b"\x00"]  # FORMERR
            signed = dns.message.make_query(name, qtype)
            signed.use_tsig(keyring, keyname="k.")
            out.append(signed.to_wire())
    return out


def sweep(port: int) -> None:
    messages = label_sweep()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for i in range(0, len(messages), 16):
            for m in messages[i : i + 16]:
                s.sendto(m, ("127.0.0.1", port))
            for _ in messages[i : i + 16]:
                s.recv(65535)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"".join(struct.pack("!H", len(m)) + m for m in messages))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65535):
            pass


def mutate(rng: random.Random, seed: bytes) -> bytes:
    b = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(b) + 1)
        op = rng.randrange(5)
        if op == 0 and b:
            b[pos % len(b)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[pos % len(b)] = rng.randrange(256)
        elif op == 2:
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del b[pos : pos + rng.randint(1, 8)]
        else:
            del b[pos:]
    return bytes(b)


def option(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def structured(rng: random.Random) -> bytes:
    """A well-formed query with random contents."""
    labels = [rng.randbytes(rng.randint(1, 12)) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.7:
        labels += ZONE_LABELS
    qname = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    qtype = rng.choice([1, 28, 16, 255, 6, 2, rng.randrange(65536)])
    qclass = rng.choice([1, 1, 1, 3, 255, rng.randrange(65536)])
    flags = rng.randrange(65536) & 0x7FFF if rng.random() < 0.3 else 0x0100
    body = qname + struct.pack("!HH", qtype, qclass)
    ar = b""
    if rng.random() < 0.6:
        opts = b""
        if rng.random() < 0.5:
            source = rng.randint(0, 24)
            addr = rng.randbytes((source + 7) // 8)
            if source % 8:
                addr = addr[:-1] + bytes([addr[-1] & (0xFF << (8 - source % 8)) & 0xFF])
            opts += option(8, struct.pack("!HBB", 1, source, 0) + addr)
        if rng.random() < 0.3:
            opts += option(10, rng.randbytes(rng.choice([8, 16, 24, 40])))
        if rng.random() < 0.2:
            opts += option(3, b"")
        if rng.random() < 0.2:
            opts += option(12, bytes(rng.randint(0, 400)))  # padding
        if rng.random() < 0.2:
            opts += option(rng.randrange(65536), rng.randbytes(rng.randint(0, 8)))
        ttl = (rng.choice([0, 0, 0, 1, rng.randrange(256)]) << 16) | (0x8000 * rng.randint(0, 1))
        ar = b"\x00" + struct.pack("!HHIH", 41, rng.choice([512, 1232, 4096, 65535]), ttl,
                                   len(opts)) + opts
    header = struct.pack("!HHHHHH", rng.randrange(65536), flags, 1, 0, 0, 1 if ar else 0)
    return header + body + ar


def packet(rng: random.Random, seeds: list[bytes]) -> bytes:
    r = rng.random()
    if r < 0.4:
        return mutate(rng, rng.choice(seeds))
    if r < 0.8:
        return structured(rng)
    return rng.randbytes(rng.randint(0, 600))


def fuzz_udp(port: int, count: int, rng: random.Random, seeds: list[bytes],
             deadline: float) -> tuple[int, int]:
    """Send `count` packets (in bursts, reading answers in between); return (sent,
    answers received)."""
    sent = received = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        while sent < count and time.monotonic() < deadline:
            for _ in range(min(32, count - sent)):
                try:
                    s.sendto(packet(rng, seeds) or b"\x00", ("127.0.0.1", port))
                    sent += 1
                except BlockingIOError:
                    break
            while sel.select(0.002):
                try:
                    while True:
                        s.recv(65535)
                        received += 1
                except BlockingIOError:
                    pass
        sel.close()
    return sent, received


def fuzz_tcp(port: int, count: int, rng: random.Random, seeds: list[bytes],
             deadline: float) -> tuple[int, int]:
    """Send `count` messages, 20 to a connection, then read until the server closes;
    return (sent, connections that ended cleanly or were closed by the server)."""
    sent = connections = 0
    while sent < count and time.monotonic() < deadline:
        batch = []
        for _ in range(min(20, count - sent)):
            msg = packet(rng, seeds)
            size = len(msg) if rng.random() > 0.05 else rng.randrange(65536)
            batch.append(struct.pack("!H", size) + msg)
        sent += len(batch)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"".join(batch))
                s.shutdown(socket.SHUT_WR)
                while s.recv(65535):
                    pass
            connections += 1
        except (ConnectionError, TimeoutError):
            connections += 1  # hung up on (not a query, or a prefix longer than the data)
    return sent, connections


def metric_series(http_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def idle_cpu(server: Server, seconds: float) -> float:
    cpu0 = sum(server.cpu_seconds().values())
    time.sleep(seconds)
    return (sum(server.cpu_seconds().values()) - cpu0) / seconds


def figures(server: Server, twin: Server, http_port: int, qfile: Path,
            seconds: int) -> dict[str, float]:
    time.sleep(3)  # let the last answers and the metrics flush settle
    out = {"series": metric_series(http_port), "rss_mib": sum(server.rss_mib()),
           "idle_cpu": idle_cpu(server, 5.0)}
    runs, ratios = [], []
    for turn in range(3):  # server then twin, twin then server, server then twin
        pair = [dnsperf(s, qfile, seconds, pinned=False, clients=4)
                for s in ((server, twin) if turn % 2 == 0 else (twin, server))]
        mine, theirs = pair if turn % 2 == 0 else pair[::-1]
        runs.append(mine)
        ratios.append(mine.per_cpu / theirs.per_cpu if theirs.per_cpu else 0.0)
    out["valid_q_per_cpu_s"] = sorted(r.per_cpu for r in runs)[1]
    out["valid_vs_twin"] = sorted(ratios)[1]
    out["valid_lost"] = sum(r.lost for r in runs)
    return out


def warm_up(port: int, rng: random.Random, seeds: list[bytes], udp: int, tcp: int,
            deadline: float) -> None:
    """The label sweep and the first 2% of the fuzz."""
    sweep(port)
    fuzz_udp(port, udp // 50, rng, seeds, deadline)
    fuzz_tcp(port, tcp // 50, rng, seeds, deadline)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--udp", type=int, default=500_000, help="UDP packets to send")
    parser.add_argument("--tcp", type=int, default=20_000, help="TCP messages to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=900,
                        help="stop the fuzz after this long, whatever was sent")
    parser.add_argument("--rounds", type=int, default=1,
                        help="fuzz rounds of --udp and --tcp each, measured after each")
    parser.add_argument("--answer-cache", metavar="MIB",
                        help="geodns --answer-cache (default: geodns's own default)")
    parser.add_argument("--dnsperf-seconds", type=int, default=3)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when series or RSS grew by more than 10%%")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    ensure_programs(gdnsd=False)
    rng = random.Random(args.seed)
    seeds = seed_queries()
    tmp = Path(tempfile.mkdtemp(prefix="dns-fuzz-"))
    qfile = query_file(tmp / "mix", ecs=False, cookie=False)  # dns_bench.py's mix
    servers = []
    for name in ("geodns", "twin"):
        port, http_port = free_port(), free_port()
        servers.append((Server(name, port, [
            sys.executable, "-m", "geodns.cli", "serve", "--zones", str(ZONES), "--no-health",
            "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}",
            *(["--answer-cache", args.answer_cache] if args.answer_cache else [])]),
            http_port))
    (server, http_port), (twin, _) = servers
    try:
        for s, _ in servers:
            s.start(tmp)
        far = time.monotonic() + args.max_seconds
        # the same packets for both; the fuzz goes on where the server's warm-up stopped
        warm_up(twin.port, random.Random(args.seed), seeds, args.udp, args.tcp, far)
        warm_up(server.port, rng, seeds, args.udp, args.tcp, far)
        before = figures(server, twin, http_port, qfile, args.dnsperf_seconds)
        print(f"== fresh (after warm-up): {before}", flush=True)
        rounds = []
        for n in range(1, args.rounds + 1):
            started = time.monotonic()
            deadline = started + args.max_seconds
            udp_sent, udp_answers = fuzz_udp(server.port, args.udp, rng, seeds, deadline)
            tcp_sent, tcp_conns = fuzz_tcp(server.port, args.tcp, rng, seeds, deadline)
            took = time.monotonic() - started
            print(f"== fuzz round {n}: {udp_sent:,} UDP packets ({udp_answers:,} answers), "
                  f"{tcp_sent:,} TCP messages on {tcp_conns:,} connections, {took:.0f} s",
                  flush=True)
            after = figures(server, twin, http_port, qfile, args.dnsperf_seconds)
            rounds.append({"udp_sent": udp_sent, "udp_answers": udp_answers,
                           "tcp_sent": tcp_sent, "seconds": took, "after": after})
        alive = server.proc.poll() is None
    finally:
        for s, _ in servers:
            s.stop()
    log = (tmp / "geodns.log").read_text()
    errors = log.count("internal error") + log.count("Traceback")
    print("\n| figure | fresh | " + " | ".join(f"after round {i}" for i in
                                              range(1, len(rounds) + 1)) + " | last / fresh |")
    print("|---|---:|" + "---:|" * (len(rounds) + 1))
    for key in before:
        last = rounds[-1]["after"][key]
        ratio = f"{last / before[key]:.2f}" if before[key] else "-"
        print(f"| {key} | {before[key]:,.3f} | "
              + " | ".join(f"{r['after'][key]:,.3f}" for r in rounds) + f" | {ratio} |")
    print(f"server alive: {alive}; internal errors logged: {errors}")
    result = {**rounds[0], "rounds": rounds, "before": before, "alive": alive,
              "errors": errors}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    ok = alive and not errors
    if args.check:
        after = rounds[-1]["after"]
        ok = ok and after["series"] <= before["series"] * 1.1
        ok = ok and after["rss_mib"] <= before["rss_mib"] * 1.1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
