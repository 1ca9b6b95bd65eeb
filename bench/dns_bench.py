#!/usr/bin/env python3
"""DNS benchmark: geodns against the anchors' py-ceiling, measured in the same run.

Drives each server with dnsperf (Debian's package, installed with apt-get when
missing), repetitions interleaved (rep -> query set -> server), and prints for each
run the queries per second, the lost queries, the server's CPU seconds (utime+stime
of the server process and its children, from /proc) and queries per server
CPU-second, the figure that stays fair when dnsperf shares the machine's cores.
Then medians, a run at half the measured maximum rate (dnsperf -Q) that must lose
nothing, and the resident memory of every server process.

    .venv/bin/python bench/dns_bench.py                 # 3 reps x 5 s, pinned layout
    .venv/bin/python bench/dns_bench.py --reps 5 --duration 10 --workers 2

Layouts: "pinned" puts the server on CPU 1 and dnsperf on CPU 0 (as the anchors do);
with --workers N > 1 the layout is "shared" (both free on every core).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cdn.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = Path(os.environ.get("ANCHORS", ROOT.parent / "shared" / "anchors"))
ZONES = ROOT / "bench" / "anchors-zones"
MMDB = ANCHORS / "geo" / "geo-test.mmdb"
TICK = os.sysconf("SC_CLK_TCK")
QUERY_SETS = {
    "static": ["www.cdn.example A"],  # the static answer the target is set on
    "mix": None,  # the anchors' mix: 80% edge (pool), 10% www, 5% SOA, 5% NS
}
# With --cookies: `www` with a DNS cookie (what BIND and Unbound send), geodns only:
# py-ceiling would replay one cached reply, cookie and all, which is no server cookie.
COOKIE_ARGS = ["-E", "10:0102030405060708"]


@dataclass
class Server:
    name: str
    port: int
    cmd: list[str]
    proc: subprocess.Popen | None = None

    def start(self, log_dir: Path) -> None:
        log = (log_dir / f"{self.name}.log").open("w")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=ANCHORS if self.name == "py-ceiling" else ROOT)
        for _ in range(100):
            out = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(self.port),
                                  "@127.0.0.1", "www.cdn.example", "A"],
                                 capture_output=True, text=True).stdout.strip()
            if out == "10.0.0.9":
                time.sleep(0.5 if "--workers" in self.cmd else 0)
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} does not answer; see {log_dir}/{self.name}.log")

    def pids(self) -> list[int]:
        """The server process and its children (worker processes)."""
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / TICK

    def rss_mib(self) -> list[float]:
        out = []
        for pid in self.pids():
            status = Path(f"/proc/{pid}/status").read_text()
            out.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)
        return out

    def pin(self, cpus: str) -> None:
        for pid in self.pids():
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)],
                           capture_output=True, check=False)

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Run:
    server: str
    queries: str
    qps: float
    completed: int
    lost: int
    cpu: float

    @property
    def per_cpu(self) -> float:
        return self.completed / self.cpu if self.cpu else 0.0


def ensure_dnsperf() -> None:
    missing = [p for p, b in (("dnsperf", "dnsperf"), ("bind9-dnsutils", "dig"))
               if shutil.which(b) is None]
    if missing:
        print(f"== bin/apt-install {' '.join(missing)}", flush=True)
        subprocess.run([str(ROOT / "bin" / "apt-install"), *missing], check=True)


def dnsperf(server: Server, qfile: Path, duration: int, pinned: bool,
            qps_limit: int | None = None, extra: list[str] | None = None) -> Run:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(server.port), "-d", str(qfile),
           "-c", "4", "-T", "1", "-q", "100", "-l", str(duration), *(extra or [])]
    if qps_limit:
        cmd += ["-Q", str(qps_limit)]
    if pinned:
        cmd = ["taskset", "-c", "0", *cmd]
    cpu0 = server.cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    cpu = server.cpu_seconds() - cpu0

    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        if not m:
            raise RuntimeError(f"dnsperf output not understood:\n{out}")
        return float(m.group(1))

    return Run(server.name, qfile.stem, num(r"Queries per second:\s+([\d.]+)"),
               int(num(r"Queries completed:\s+(\d+)")), int(num(r"Queries lost:\s+(\d+)")),
               cpu)


def report(rep: int, r: Run) -> None:
    print(f"   rep {rep} {r.queries:6} {r.server:10} {r.qps:9,.0f} qps  lost {r.lost}"
          f"  cpu {r.cpu:5.2f} s  {r.per_cpu:9,.0f} q/cpu-s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per dnsperf run")
    parser.add_argument("--workers", type=int, default=1, help="geodns worker processes")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the py-ceiling")
    parser.add_argument("--cookies", action="store_true",
                        help="also measure geodns on queries that carry a DNS cookie")
    args = parser.parse_args()
    ensure_dnsperf()
    pinned = args.workers == 1
    tmp = Path(tempfile.mkdtemp(prefix="dns-bench-"))
    qfiles = {}
    for name, lines in QUERY_SETS.items():
        path = tmp / f"{name}.txt"
        if lines is None:
            shutil.copy(ANCHORS / "queries" / "mix.txt", path)
        else:
            path.write_text("\n".join(lines) + "\n")
        qfiles[name] = path
    python = sys.executable
    servers = [Server("geodns", 5391, [python, "-m", "geodns.cli", "serve", "--zones",
                                       str(ZONES), "--listen", "127.0.0.1:5391",
                                       "--workers", str(args.workers), "--geoip", str(MMDB),
                                       "--log-level", "warning"])]
    if not args.no_ceiling:
        servers.append(Server("py-ceiling", 5392, [python, "servers/ceiling_uvloop.py",
                                                   str(MMDB), "5392"]))
    runs: list[Run] = []
    try:
        for s in servers:
            s.start(tmp)
            s.pin("1" if pinned else "0-1")
        rss_start = {s.name: s.rss_mib() for s in servers}
        layout = "pinned (server CPU 1, dnsperf CPU 0)" if pinned else "shared (2 cores)"
        print(f"== {args.reps} reps x {args.duration} s, layout {layout}, "
              f"geodns workers {args.workers}, load average {os.getloadavg()[0]:.1f}",
              flush=True)
        for rep in range(1, args.reps + 1):
            for qfile in qfiles.values():
                for s in servers:
                    r = dnsperf(s, qfile, args.duration, pinned)
                    runs.append(r)
                    report(rep, r)
            if args.cookies:
                r = dnsperf(servers[0], qfiles["static"], args.duration, pinned,
                            extra=COOKIE_ARGS)
                r.queries = "cookie"
                runs.append(r)
                report(rep, r)
        geodns = servers[0]
        half = int(statistics.median(r.qps for r in runs if r.server == "geodns"
                                     and r.queries == "mix") / 2)
        half_run = dnsperf(geodns, qfiles["mix"], args.duration, pinned, qps_limit=half)
        rss_end = {s.name: s.rss_mib() for s in servers}
    finally:
        for s in servers:
            s.stop()
    print("\n| query set | server | median qps | median queries / server CPU-s | "
          "lost (all runs) |")
    print("|---|---|---:|---:|---:|")
    medians: dict[tuple[str, str], float] = {}
    for qname in [*qfiles, "cookie"]:
        for s in servers:
            mine = [r for r in runs if r.server == s.name and r.queries == qname]
            if not mine:
                continue
            medians[(qname, s.name)] = statistics.median(r.per_cpu for r in mine)
            print(f"| {qname} | {s.name} | {statistics.median(r.qps for r in mine):,.0f} | "
                  f"{medians[(qname, s.name)]:,.0f} | {sum(r.lost for r in mine)} |")
    if not args.no_ceiling:
        for qname in qfiles:
            ratio = medians[(qname, "geodns")] / medians[(qname, "py-ceiling")]
            print(f"geodns / py-ceiling, queries per CPU-second, {qname}: {ratio:.0%}")
    print(f"half rate ({half:,} qps, mix): {half_run.completed:,} completed, "
          f"{half_run.lost} lost")
    for name in rss_end:
        print(f"RSS {name}: after start {', '.join(f'{m:.0f}' for m in rss_start[name])} MiB, "
              f"after the runs {', '.join(f'{m:.0f}' for m in rss_end[name])} MiB "
              "(one figure per process)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
