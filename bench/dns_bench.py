#!/usr/bin/env python3
"""DNS benchmark: geodns beside gdnsd on the same scenario, measured in the same run.

Both servers serve bench/anchors-zones (gdnsd: bench/gdnsd/, the same data) with the
GeoIP2 City test database bench/geo-test.mmdb: static SOA, NS and `www`, and `edge`
steered to the nearest of four datacenters. dnsperf (Debian's package, installed with
bin/apt-install when missing) replays four binary query files (`-B`), each the mix
80% edge A, 10% www A, 5% SOA, 5% NS with EDNS:

    mix             no option (every query from 127.0.0.1, a real GeoIP lookup)
    mix+cookie      the same with a DNS client cookie (what BIND and Unbound send)
    ecsmix          2,048 queries, each with ECS for another /24 (256 in each of 8 cities)
    ecsmix+cookie   the same with a client cookie too (dnsperf's -E carries one option)

Repetitions are interleaved (rep -> query file -> server). For each run it prints the
queries per second, the lost queries, the server's CPU seconds (utime+stime of the
process and its children, from /proc) and queries per server CPU-second, the figure
that stays fair when dnsperf shares the machine's cores; then medians, the cookie
ratios (queries per CPU-second with a cookie / without), a run at half geodns's
maximum rate (dnsperf -Q) that must lose nothing, and every server process's RSS.

    .venv/bin/python bench/dns_bench.py                      # 5 reps x 5 s, pinned
    .venv/bin/python bench/dns_bench.py --reps 3 --workers 2 --clients 1 --no-gdnsd

Layouts: "pinned" puts the server on CPU 1 and dnsperf on CPU 0; with --workers N > 1
(or --shared) the layout is "shared" (both free on every core), and each run also
prints every process's share of the server's CPU time (how evenly the kernel spread
the queries over the workers).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.message

from cdn.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ZONES = BENCH / "anchors-zones"
MMDB = BENCH / "geo-test.mmdb"
TICK = os.sysconf("SC_CLK_TCK")
MIX = [("edge.cdn.example", "A")] * 16 + [("www.cdn.example", "A")] * 2 + \
      [("cdn.example", "SOA"), ("cdn.example", "NS")]
CITY_NETS = ["126.0", "81.2", "3.80", "49.36", "177.0", "1.120", "18.184", "41.0"]  # /16s
QUERY_FILES = ["mix", "mix+cookie", "ecsmix", "ecsmix+cookie"]


def query_file(path: Path, ecs: bool, cookie: bool) -> Path:
    """dnsperf's binary input: each query's wire form behind its 2-octet length."""
    nets = [f"{n}.{i}.0" for n in CITY_NETS for i in range(256)]
    random.Random(42).shuffle(nets)
    count = len(nets) if ecs else len(MIX)
    out = bytearray()
    for i in range(count):
        name, qtype = MIX[i % len(MIX)]
        options: list[dns.edns.Option] = []
        if ecs:
            options.append(dns.edns.ECSOption(nets[i], 24))
        if cookie:  # a client cookie of 8 octets, one per resolver (16 of them)
            options.append(dns.edns.GenericOption(dns.edns.COOKIE, bytes([i % 16]) * 8))
        q = dns.message.make_query(name, qtype, use_edns=0, payload=1232, options=options)
        q.id = 0
        q.flags = 0  # no RD, like an authoritative's traffic from resolvers
        wire = q.to_wire()
        out += len(wire).to_bytes(2, "big") + wire
    path.write_bytes(bytes(out))
    return path


@dataclass
class Server:
    name: str
    port: int
    cmd: list[str]
    proc: subprocess.Popen | None = None

    def start(self, log_dir: Path) -> None:
        log = (log_dir / f"{self.name}.log").open("w")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        for _ in range(300):
            out = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(self.port),
                                  "@127.0.0.1", "www.cdn.example", "A"],
                                 capture_output=True, text=True).stdout.strip()
            if out == "10.0.0.9":
                time.sleep(0.5 if "--workers" in self.cmd else 0)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} does not answer; see {log_dir}/{self.name}.log")

    def pids(self) -> list[int]:
        """The server process and its children (worker processes)."""
        assert self.proc is not None
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def cpu_seconds(self) -> dict[int, float]:
        """CPU seconds (utime + stime) of each process."""
        out = {}
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[pid] = (int(fields[11]) + int(fields[12])) / TICK
        return out

    def rss_mib(self) -> list[float]:
        out = []
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            m = re.search(r"VmRSS:\s+(\d+)", status)
            out.append(int(m.group(1)) / 1024 if m else 0.0)
        return out

    def pin(self, cpus: str) -> None:
        for pid in self.pids():
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)],
                           capture_output=True, check=False)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def gdnsd_server(tmp: Path, port: int) -> Server:
    """gdnsd on `port` with bench/gdnsd's config and zone (in a directory of its own)."""
    conf = tmp / "gdnsd"
    (conf / "zones").mkdir(parents=True)
    (conf / "geoip").mkdir()
    text = (BENCH / "gdnsd" / "config").read_text()
    (conf / "config").write_text(text.replace("@RUN@", str(conf)).replace("@PORT@", str(port)))
    shutil.copy(BENCH / "gdnsd" / "cdn.example", conf / "zones" / "cdn.example")
    shutil.copy(MMDB, conf / "geoip" / MMDB.name)
    return Server("gdnsd", port, ["gdnsd", "-c", str(conf), "start"])


@dataclass
class Run:
    server: str
    queries: str
    qps: float
    completed: int
    lost: int
    cpu: float
    shares: list[float]  # each process's part of `cpu`, largest first

    @property
    def per_cpu(self) -> float:
        return self.completed / self.cpu if self.cpu else 0.0


def share(a: float, b: float) -> str:
    """a / b to two places, or "n/a" when b was not measured (a very short run on a
    loaded machine may record no CPU time for a server)."""
    return f"{a / b:.2f}" if b else "n/a"


def ensure_programs(gdnsd: bool) -> None:
    wanted = [("dnsperf", "dnsperf"), ("bind9-dnsutils", "dig")]
    if gdnsd:
        wanted.append(("gdnsd", "gdnsd"))
    missing = [p for p, b in wanted if shutil.which(b) is None]
    if missing:
        print(f"== bin/apt-install {' '.join(missing)}", flush=True)
        subprocess.run([str(ROOT / "bin" / "apt-install"), *missing], check=True)


def dnsperf(server: Server, qfile: Path, duration: int, pinned: bool, clients: int,
            qps_limit: int | None = None) -> Run:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(server.port), "-B", "-d", str(qfile),
           "-c", str(clients), "-T", "1", "-q", "100", "-l", str(duration)]
    if qps_limit:
        cmd += ["-Q", str(qps_limit)]
    if pinned:
        cmd = ["taskset", "-c", "0", *cmd]
    cpu0 = server.cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    cpu1 = server.cpu_seconds()
    used = [cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1]
    cpu = sum(used)
    shares = sorted((u / cpu if cpu else 0.0 for u in used), reverse=True)

    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        if not m:
            raise RuntimeError(f"dnsperf output not understood:\n{out}")
        return float(m.group(1))

    return Run(server.name, qfile.stem, num(r"Queries per second:\s+([\d.]+)"),
               int(num(r"Queries completed:\s+(\d+)")), int(num(r"Queries lost:\s+(\d+)")),
               cpu, shares)


def report(rep: int, r: Run) -> None:
    print(f"   rep {rep} {r.queries:14} {r.server:7} {r.qps:9,.0f} qps  lost {r.lost}"
          f"  cpu {r.cpu:5.2f} s  {r.per_cpu:9,.0f} q/cpu-s"
          + (f"  cpu shares {'/'.join(f'{x:.0%}' for x in r.shares)}" if len(r.shares) > 1
             else ""), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per dnsperf run")
    parser.add_argument("--workers", type=int, default=1, help="geodns worker processes")
    parser.add_argument("--clients", type=int, default=4,
                        help="dnsperf client sockets (-c; default 4)")
    parser.add_argument("--no-gdnsd", action="store_true", help="measure geodns alone")
    parser.add_argument("--shared", action="store_true",
                        help="the shared layout with one worker too (to compare with N)")
    parser.add_argument("--queries", nargs="+", choices=QUERY_FILES, default=QUERY_FILES,
                        help="query files to replay (default: all four)")
    args = parser.parse_args()
    ensure_programs(not args.no_gdnsd)
    pinned = args.workers == 1 and not args.shared
    tmp = Path(tempfile.mkdtemp(prefix="dns-bench-"))
    qfiles = {name: query_file(tmp / f"{name}.bin", "ecs" in name, "cookie" in name)
              for name in args.queries}
    servers = [Server("geodns", 5391, [sys.executable, "-m", "geodns.cli", "serve",
                                       "--zones", str(ZONES), "--listen", "127.0.0.1:5391",
                                       "--workers", str(args.workers), "--geoip", str(MMDB),
                                       "--log-level", "warning"])]
    if not args.no_gdnsd:
        servers.append(gdnsd_server(tmp, 5392))
    runs: list[Run] = []
    try:
        for s in servers:
            s.start(tmp)
            s.pin("1" if pinned else "0-1")
        rss_start = {s.name: s.rss_mib() for s in servers}
        layout = "pinned (server CPU 1, dnsperf CPU 0)" if pinned else "shared (2 cores)"
        print(f"== {args.reps} reps x {args.duration} s, layout {layout}, geodns workers "
              f"{args.workers}, dnsperf clients {args.clients}, load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for rep in range(1, args.reps + 1):
            for qfile in qfiles.values():
                for s in servers:
                    r = dnsperf(s, qfile, args.duration, pinned, args.clients)
                    runs.append(r)
                    report(rep, r)
        geodns = servers[0]
        first = next(iter(qfiles))
        half = int(statistics.median(r.qps for r in runs if r.server == "geodns"
                                     and r.queries == first) / 2)
        half_run = dnsperf(geodns, qfiles[first], args.duration, pinned, args.clients,
                           qps_limit=half)
        rss_end = {s.name: s.rss_mib() for s in servers}
        load = os.getloadavg()[0]
    finally:
        for s in servers:
            s.stop()
    print("\n| queries | server | median qps | median queries / server CPU-s | "
          "lost (all runs) |")
    print("|---|---|---:|---:|---:|")
    medians: dict[tuple[str, str], float] = {}
    for qname in qfiles:
        for s in servers:
            mine = [r for r in runs if r.server == s.name and r.queries == qname]
            medians[(qname, s.name)] = statistics.median(r.per_cpu for r in mine)
            print(f"| {qname} | {s.name} | {statistics.median(r.qps for r in mine):,.0f} | "
                  f"{medians[(qname, s.name)]:,.0f} | {sum(r.lost for r in mine)} |")
    for mix in ("mix", "ecsmix"):
        for s in servers:
            if (mix, s.name) in medians and (f"{mix}+cookie", s.name) in medians:
                ratio = share(medians[(f"{mix}+cookie", s.name)], medians[(mix, s.name)])
                print(f"{s.name}: {mix} with cookies / without, queries per CPU-second: "
                      f"{ratio}")
    if not args.no_gdnsd:
        for qname in qfiles:
            ratio = share(medians[(qname, "geodns")], medians[(qname, "gdnsd")])
            print(f"geodns / gdnsd, queries per CPU-second, {qname}: {ratio}")
    print(f"half rate ({half:,} qps, {first}): {half_run.completed:,} completed, "
          f"{half_run.lost} lost")
    for name in rss_end:
        print(f"RSS {name}: after start {', '.join(f'{m:.0f}' for m in rss_start[name])} MiB, "
              f"after the runs {', '.join(f'{m:.0f}' for m in rss_end[name])} MiB "
              "(one figure per process)")
    print(f"load average at the end: {load:.1f} ({os.cpu_count()} cores)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
